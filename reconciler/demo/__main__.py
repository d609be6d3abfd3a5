"""`python -m reconciler.demo`: converge the shipped desired state from nothing, for real.

1. build the tiny local base model (`models/tiny-base`) if it is not there;
2. start a local OpenAI-compatible provider for the external use case (a second gateway);
3. start the gateway with the shipped guardrail policies inline;
4. start simulated players, so every bake window has live traffic to judge;
5. `apply` the plan: register, serve the base, train, evaluate, canary through every step,
   promote; bake times, analysis intervals and progress deadlines are scaled down
   (`--time-scale`) so 30 minutes take seconds. A step short of evidence keeps baking until
   it has enough requests or its deadline passes; like a controller's sync loop, each use case
   is applied on its own, and again if its rollout paused for lack of traffic;
6. print what the players saw - every request without an answer, by use case and cause -
   and the status of every use case. Players that failed for any reason but "nothing serves
   this use case yet" fail the demo.

Honours MLFLOW_TRACKING_URI and RECONCILER_STATE_DIR like every command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from reconciler.child_process import free_port
from reconciler.demo.players import Players
from reconciler.settings import Settings

# 30 minutes of bake become 20 seconds: enough traffic for minRequests at a 10% canary.
DEFAULT_TIME_SCALE = 20 / 1800
TINY_MODEL = Path("models/tiny-base")
# As in a game: players talk to NPCs far more often than factions decide or the narrator writes.
DEMO_CONNECTIONS = {"npc-dialogue": 6, "faction-decision": 4, "story-generation": 2}


# A rollout paused for lack of traffic is applied again, as a controller would, for as long as
# each round moves it on; this many rounds in a row at the same step end the demo with the cause.
MAX_ROUNDS_WITHOUT_PROGRESS = 3
_STARTED = time.monotonic()


def _say(message: str) -> None:
    print(f"\n== [{time.monotonic() - _STARTED:4.0f}s] {message}", flush=True)


def _converge(repo: Path, use_cases: list[str], time_scale: float) -> int:
    """Apply every use case on its own until it is no longer paused for lack of traffic.

    As a controller syncs each application independently: a use case whose canary window saw
    too few requests is applied again at once (and resumes at that step), not after the
    slowest rollout of the others has finished.
    """
    from reconciler.apply.commands import collect_status

    collect_status(repo, None)  # creates the registry and journal stores once, before threads
    with ThreadPoolExecutor(max_workers=len(use_cases), thread_name_prefix="demo") as pool:
        codes = list(pool.map(lambda name: _converge_one(repo, name, time_scale), use_cases))
    return max(codes, default=0)


def _converge_one(repo: Path, name: str, time_scale: float) -> int:
    from reconciler.apply.commands import collect_status, run_apply
    from reconciler.health import Health

    round_, stalled, last_stage = 0, 0, None
    while True:
        round_ += 1
        _say(f"apply {name}" if round_ == 1 else f"apply {name} again (round {round_})")
        code = run_apply(
            planfile=None,
            repo=repo,
            ref=None,
            auto_approve=True,
            only=[name],
            lock_timeout=60,
            time_scale=time_scale,
            interactive=False,
        )
        status = next(s for s in collect_status(repo, None) if s.name == name)
        if code != 0 or status.health is not Health.SUSPENDED:
            return code
        rollout = status.as_json().get("rollout")
        stage = rollout.get("stage") if isinstance(rollout, dict) else None
        stalled = stalled + 1 if stage == last_stage else 1
        last_stage = stage
        if stalled >= MAX_ROUNDS_WITHOUT_PROGRESS:
            print(
                f"{name}: still paused at {stage} after {stalled} rounds without new "
                f"evidence: {status.message}",
                file=sys.stderr,
            )
            return 1
        print(f"{name}: paused at {stage} for lack of traffic; applying again")


def _report_players(players: Players) -> None:
    """Every request a player sent without getting an answer is counted and explained."""
    print(
        f"players sent {players.sent} requests: {players.answered} answered, "
        f"{players.waiting} before their use case served anything, "
        f"{players.failed} failed"
    )
    for line in players.report():
        print(f"  {line}")


def _print_status(repo: Path) -> None:
    from reconciler.apply.commands import collect_status

    for status in collect_status(repo, None):
        traffic = ", ".join(f"{v}={w}%" for v, w in status.traffic)
        print(
            f"{status.name:<20} {status.sync.value:<10} {status.health.value:<12} "
            f"champion {status.champion}  traffic {traffic}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.demo", description=__doc__)
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE)
    args = parser.parse_args(argv)
    repo: Path = args.repo
    settings = Settings.from_environment()
    # Per-file download bars of artifacts that take milliseconds only bury the demo's story.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from transformers.utils import logging as transformers_logging

    from reconciler.demo.provider import running_provider
    from reconciler.gateway.composition import build_gateway
    from reconciler.gateway.config import GatewayConfig
    from reconciler.gateway.policy_guard import PolicyOutputGuard
    from reconciler.gateway.server import GatewayServer
    from reconciler.guardrails.store import ViolationStore
    from reconciler.spec.loader import load_desired_state
    from reconciler.spec.model import OpenAICompatibleModel
    from reconciler.state_store.database import StateDatabase
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    desired = load_desired_state(repo).state
    if desired is None:
        print("the desired state is invalid: run `reconciler validate`", file=sys.stderr)
        return 1
    tiny = repo / TINY_MODEL
    if not (tiny / "config.json").exists():
        _say(f"building the tiny base model in {tiny}")
        build_tiny_model(
            tiny, extra_texts=shipped_dataset_texts(repo / "desired_state" / "datasets")
        )

    with ExitStack() as stack:
        if any(
            isinstance(model, OpenAICompatibleModel)
            for u in desired.use_cases
            for model in u.spec.acceptable_models
        ):
            _say("starting the local provider for external models")
            provider_root = settings.state_dir / "demo-provider"
            provider_url = stack.enter_context(running_provider(provider_root, tiny, free_port()))
            os.environ.setdefault("STORY_PROVIDER_BASE_URL", provider_url)
            os.environ.setdefault("STORY_PROVIDER_API_KEY", "demo-key-not-a-secret")
        guard = PolicyOutputGuard.from_desired_state(
            desired, store=ViolationStore(StateDatabase.of(settings)), base_path=repo
        )
        config = GatewayConfig.from_settings(settings, port=free_port(), repo=repo)
        _say("starting the gateway")
        with GatewayServer(build_gateway(config, guard=guard)) as gateway:
            prompts = Players.prompts_from(
                repo, {u.name: u.spec.evaluation.prompts for u in desired.use_cases}
            )
            players = Players(gateway.url, prompts, connections=DEMO_CONNECTIONS).start()
            try:
                code = _converge(repo, [u.name for u in desired.use_cases], args.time_scale)
            finally:
                players.stop()
            _report_players(players)
            if players.failed:
                code = code or 1
    _say("status")
    _print_status(repo)
    _say(f"demo finished (apply exit code {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
