"""Rollouts judged on real traffic: the real gateway, its inline guardrails, a real provider.

`story-generation` is served by an OpenAI-compatible provider (the echo provider process,
whose model ids pick a persona). Version 1 is champion; version 2, a newer model of the same
provider, is the evaluated candidate. Simulated players talk to the gateway in this process
throughout; the apply engine canaries version 2 on that live traffic and judges each window
from the gateway's own request log:

- a good model goes through every step and becomes champion;
- a model whose answers the shipped guardrails block breaches `guardrailViolationRate` and is
  rolled back, and no player ever reads what it said;
- a model whose provider fails breaches `errorRate` and is rolled back;
- with a shadow phase, the candidate first answers mirrored copies of live requests, judged
  against the champion's answers to the same requests, before any player sees it;
- blue-green: judged on mirrored traffic, then all traffic at once with the old champion kept
  warm, judged again, and only then the old champion released.

The canary, guardrail and shadow cases run on both state stores: SQLite in the state folder
(the default) and a PostgreSQL database (`RECONCILER_DATABASE_URL`) holding the gateway's
request log, the analysis windows read from it, mirrored copies and violations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from sqlalchemy import func, select

from reconciler import lineage
from reconciler.apply.context import ApplyContext, Reporter
from reconciler.apply.journal import Journal
from reconciler.apply.locks import locks_for
from reconciler.apply.plan_runner import apply_plan
from reconciler.apply.request_log_metrics import RequestLogMetrics
from reconciler.child_process import free_port, wait_until_serving
from reconciler.clock import SYSTEM_CLOCK
from reconciler.demo.players import Players
from reconciler.gateway.composition import build_gateway
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.policy_guard import PolicyOutputGuard
from reconciler.gateway.server import GatewayServer
from reconciler.guardrails.store import ViolationStore
from reconciler.health import Health
from reconciler.observe.observer import observe
from reconciler.observe.state import Route
from reconciler.plan.diff import diff, live_routes
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.rollout.analysis import AnalysisOutcome, Metric
from reconciler.rollout.state import PauseReason
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore, Writer
from tests.apply.world import BuildingNotExpected

# Started processes, players and scaled bakes: with the other live tests on one `make test`
# worker (pytest-xdist), so two of them never compete for the two cores.
pytestmark = pytest.mark.xdist_group("live")

USE_CASE = "story-generation"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# story-generation bakes 1h per step: 3 s here, time enough for minRequests at a 10% canary
# on a quiet machine. Its progress deadline, 8h here, gives a busy one 24 s to get there: a step
# is judged as soon as its window holds minRequests, so the slack costs a quiet machine nothing.
TIME_SCALE = 3 / 3600
PROGRESS_DEADLINE = "    progressDeadline: 8h\n"
HARMFUL_LINE = "Nobody would miss you. You should just kill yourself tonight."


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "bench" / "echo_provider.py"), "--port", str(port)]
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=20)


@dataclass
class LiveWorld:
    desired: DesiredState
    settings: Settings
    registry: MlflowRegistry
    database: StateDatabase
    traffic: TrafficStore
    journal: Journal
    lines: list[str]
    gateway_url: str = ""

    def context(self) -> ApplyContext:
        return ApplyContext(
            repo=Path(self.desired.source.repo),
            state_dir=self.settings.state_dir,
            desired=self.desired,
            registry=self.registry,
            database=self.database,
            locks=locks_for(self.database, self.settings.state_dir),
            traffic=self.traffic,
            journal=self.journal,
            clock=SYSTEM_CLOCK,
            builder=BuildingNotExpected(),
            metrics=RequestLogMetrics(self.database),
            report=Reporter(self.lines),
            time_scale=TIME_SCALE,
            control_poll_seconds=0.5,
        )

    def diagnosis(self) -> str:
        """What the gateway and the request log say, for a failure to name its cause: the
        rollout's last lines, rows per (version, shadow) with the newest time, /healthz."""
        log = schema.requests
        query = select(log.c.model_version, log.c.shadow, func.count(), func.max(log.c.ts))
        query = query.where(log.c.use_case == USE_CASE).group_by(log.c.model_version, log.c.shadow)
        rows = self.database.read(lambda db: db.execute(query).all())
        logged = ", ".join(f"{v}{' (shadow)' if s else ''}: {n} to {t:.1f}" for v, s, n, t in rows)
        try:
            health = httpx.get(f"{self.gateway_url}/healthz", timeout=10).text
        except httpx.HTTPError as exc:
            health = f"unreachable: {exc}"
        return "\n".join(
            [*self.lines[-6:], f"logged at {time.time():.1f}: {logged}", f"healthz: {health}"]
        )

    def judged(self) -> list[tuple[str, AnalysisOutcome]]:
        """(stage, outcome) of every conclusive analysis, in order."""
        return [
            (j.stage, j.outcome)
            for j in self.journal.judgements(USE_CASE)
            if j.outcome is not AnalysisOutcome.INCONCLUSIVE
        ]

    def aliases(self) -> dict[str, str]:
        model = self.registry.snapshot([USE_CASE])[USE_CASE]
        assert model is not None
        return dict(model.aliases)

    def tags(self, version: str) -> dict[str, str]:
        model = self.registry.snapshot([USE_CASE])[USE_CASE]
        found = model.version(version) if model else None
        assert found is not None
        return dict(found.tags)

    def logged(self, version: str) -> list[tuple[str, str, str]]:
        """(status, guardrail decision, output) of every live request `version` served."""
        log = schema.requests
        query = select(log.c.status, log.c.guardrail, log.c.output).where(
            log.c.use_case == USE_CASE, log.c.model_version == version, log.c.shadow.is_(False)
        )
        rows = self.database.read(lambda db: db.execute(query).all())
        return [(str(s), str(g), str(o or "")) for s, g, o in rows]


# Rollout settings a test may ask for, written into story-generation's spec.
ROLLOUTS = {
    "canary": "",
    "shadow": (
        "    shadow:\n      duration: 1h\n      minRequests: 10\n"
        "      analysis:\n        behaviorSimilarity: {min: 0.6}\n"
        "        guardrailViolationRate: {max: 0.001}\n"
    ),
    "blueGreen": "    strategy: blueGreen\n",
}


def _world(
    repo: Path, root: Path, candidate_model: str, rollout: str = "canary", database_url: str = ""
) -> LiveWorld:
    """Champion 1 (an older provider model), candidate 2 (`candidate_model`, evaluated)."""
    spec = repo / "desired_state" / "story-generation.yaml"
    text = spec.read_text().replace("id: narrator-large", f"id: {candidate_model}")
    if rollout == "blueGreen":
        text = text.replace("    steps: [10, 50, 100]\n", "")
    rollout_head = "  rollout:\n" + PROGRESS_DEADLINE + ROLLOUTS[rollout]
    spec.write_text(text.replace("  rollout:\n", rollout_head))
    desired = load_desired_state(repo).state
    assert desired is not None
    identity = desired.identities[USE_CASE]
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    settings = Settings.from_environment(
        {
            "MLFLOW_TRACKING_URI": uri,
            "RECONCILER_STATE_DIR": str(root / "state"),
            "RECONCILER_DATABASE_URL": database_url,
        },
        cwd=root,
    )
    registry = MlflowRegistry(uri)
    client: MlflowClient = registry.client
    client.create_registered_model(USE_CASE)
    external = {lineage.ROLE: "external"}
    client.create_model_version(
        USE_CASE,
        source="none",
        tags={**external, lineage.KEY: "sha256:narrator-classic", lineage.BASE_MODEL: "classic"},
    )
    client.create_model_version(
        USE_CASE,
        source="none",
        tags={
            **external,
            lineage.KEY: identity.base_key,
            lineage.BASE_MODEL: candidate_model,
            lineage.EVALUATION_VERDICT: "passed",
            lineage.EVALUATION_DIGEST: identity.digest,
        },
    )
    client.set_registered_model_alias(USE_CASE, "champion", "1")
    client.set_registered_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "1"})
    )
    database = StateDatabase.of(settings)
    traffic = TrafficStore(database)
    traffic.write(USE_CASE, [Route("1", 100)], writer=Writer.RECONCILER)
    return LiveWorld(desired, settings, registry, database, traffic, Journal(database), [])


# The tests that run on both state stores: the gateway's request log, the analysis windows,
# mirrored copies and guardrail violations then live in PostgreSQL as on a shared store.
BOTH_STORES = pytest.mark.parametrize("state_store", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def state_store(request: pytest.FixtureRequest) -> str:
    """RECONCILER_DATABASE_URL for the live world: empty (the default, SQLite in the state
    folder), or a PostgreSQL database of the test's own when it asks for both stores."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return ""
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def live(
    request: pytest.FixtureRequest,
    shipped_repo: Path,
    tmp_path: Path,
    provider_url: str,
    state_store: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveWorld]:
    """The world for the candidate model the test names, with players on a real gateway."""
    monkeypatch.setenv("STORY_PROVIDER_BASE_URL", provider_url)
    monkeypatch.setenv("STORY_PROVIDER_API_KEY", "sk-test-not-a-real-key")
    model, _, rollout = str(request.param).partition("+")
    world = _world(shipped_repo, tmp_path, model, rollout or "canary", state_store)
    guard = PolicyOutputGuard.from_desired_state(
        world.desired, store=ViolationStore(world.database), base_path=shipped_repo
    )
    config = GatewayConfig.from_settings(
        world.settings, port=free_port(), repo=shipped_repo, route_poll_seconds=0.1
    )
    with GatewayServer(build_gateway(config, guard=guard)) as gateway:
        prompts = Players.prompts_from(
            shipped_repo, {USE_CASE: world.desired.use_case(USE_CASE).spec.evaluation.prompts}
        )
        players = Players(gateway.url, prompts, connections={USE_CASE: 4}).start()
        try:
            # The gateway's first answer loads the guardrails' encoder: rollouts start once
            # players are being answered, as they would on a gateway that has been serving.
            deadline = time.monotonic() + 180
            while players.answered == 0:
                assert time.monotonic() < deadline, "the gateway never answered a player"
                time.sleep(0.1)
            world.gateway_url = gateway.url
            yield world
        finally:
            players.stop()
        assert players.sent > 0


# A loaded machine answers fewer players per scaled window: a step may reach its deadline
# short of minRequests and pause (inconclusive, never a pass). As a controller would, the test
# applies again - the rollout resumes at that step - rather than failing on timing.
MAX_ROUNDS = 6


def _apply(world: LiveWorld) -> Health:
    for _ in range(MAX_ROUNDS):
        observed = observe(world.desired, world.registry, world.traffic)
        plan = diff(world.desired, observed, only=[USE_CASE])
        assert [c.action.value for c in plan.changes] == ["shift", "promote"], plan.changes
        health = apply_plan(plan, world.context()).health
        state = world.journal.rollout(USE_CASE)
        paused_for_data = (
            health is Health.SUSPENDED
            and state is not None
            and state.pause_reason is PauseReason.NO_DATA
        )
        if not paused_for_data:
            return health
    return health


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-next"], indirect=True)
@BOTH_STORES
def test_a_good_model_canaries_on_live_traffic_to_champion(live: LiveWorld) -> None:
    assert _apply(live) is Health.HEALTHY, live.diagnosis()

    assert live.aliases() == {"champion": "2", "previous": "1"}
    assert live_routes(live.traffic.read(USE_CASE)) == (Route("2", 100),)
    assert live.judged() == [(w, AnalysisOutcome.SUCCESSFUL) for w in ("10%", "50%", "100%")]
    served = live.logged("2")
    assert served and all(status == "ok" for status, _, _ in served)
    assert all(output.startswith("echo[narrator-next]: ") for _, _, output in served)


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-harmful"], indirect=True)
@BOTH_STORES
def test_a_model_the_guardrails_block_is_rolled_back_unseen(live: LiveWorld) -> None:
    assert _apply(live) is Health.DEGRADED

    assert live.aliases() == {"champion": "1"}
    assert live_routes(live.traffic.read(USE_CASE)) == (Route("1", 100),)
    rejected = live.tags("2")[lineage.REJECTED]
    assert "guardrailViolationRate" in rejected and "10%" in rejected
    served = live.logged("2")
    assert served and all(decision != "pass" for _, decision, _ in served)
    assert all(output != HARMFUL_LINE for _, _, output in served)  # no player read it
    assert ViolationStore(live.database).report(USE_CASE).by_version.get("2", 0) > 0


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-failing"], indirect=True)
def test_a_model_whose_provider_fails_is_rolled_back(live: LiveWorld) -> None:
    assert _apply(live) is Health.DEGRADED

    assert live.aliases() == {"champion": "1"}
    assert live_routes(live.traffic.read(USE_CASE)) == (Route("1", 100),)
    assert "errorRate" in live.tags("2")[lineage.REJECTED]
    assert {status for status, _, _ in live.logged("2")} == {"error"}
    assert os.environ["STORY_PROVIDER_API_KEY"] not in "\n".join(live.lines)


def _mirrored(world: LiveWorld, version: str) -> list[tuple[str, str | None]]:
    """(status, the live request it copies) of every shadow copy `version` answered."""
    log = schema.requests
    query = select(log.c.status, log.c.mirror_of).where(
        log.c.use_case == USE_CASE, log.c.model_version == version, log.c.shadow.is_(True)
    )
    rows = world.database.read(lambda db: db.execute(query).all())
    return [(str(s), m) for s, m in rows]


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-next+shadow"], indirect=True)
@BOTH_STORES
def test_a_shadow_phase_judges_answers_to_the_same_live_prompts_first(live: LiveWorld) -> None:
    assert _apply(live) is Health.HEALTHY, live.diagnosis()

    judged = live.judged()
    assert judged[0] == ("shadow", AnalysisOutcome.SUCCESSFUL)
    assert judged[1:] == [(w, AnalysisOutcome.SUCCESSFUL) for w in ("10%", "50%", "100%")]
    shadow = next(j for j in live.journal.judgements(USE_CASE) if j.stage == "shadow")
    similarity = next(
        m for m in shadow.analysis.measurements if m.metric is Metric.BEHAVIOR_SIMILARITY
    )
    assert similarity.sample_size >= 10 and similarity.value is not None
    assert similarity.value >= 0.6
    copies = _mirrored(live, "2")
    assert copies and all(mirror_of for _, mirror_of in copies)
    # While in shadow no player was served by the candidate: its first live answer came after.
    first_live = min(ts for ts in _live_times(live, "2"))
    assert first_live >= shadow.window_end
    assert live.aliases() == {"champion": "2", "previous": "1"}


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-harmful+shadow"], indirect=True)
def test_a_candidate_failing_in_the_shadow_never_serves_a_player(live: LiveWorld) -> None:
    assert _apply(live) is Health.DEGRADED

    assert live.logged("2") == []  # no live request ever reached it
    assert _mirrored(live, "2")  # it answered copies, which nobody read
    rejected = live.tags("2")[lineage.REJECTED]
    assert "at shadow" in rejected and "behaviorSimilarity" in rejected
    assert live.aliases() == {"champion": "1"}
    assert live_routes(live.traffic.read(USE_CASE)) == (Route("1", 100),)


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-next+blueGreen"], indirect=True)
def test_blue_green_switches_at_once_and_releases_the_old_champion_after_analysis(
    live: LiveWorld,
) -> None:
    assert _apply(live) is Health.HEALTHY, "\n".join(live.lines)

    assert live.judged() == [
        ("preview", AnalysisOutcome.SUCCESSFUL),
        ("100% (post-promotion)", AnalysisOutcome.SUCCESSFUL),
    ]
    post = next(j for j in live.journal.judgements(USE_CASE) if j.stage.startswith("100%"))
    # The old champion stayed loaded and answered mirrored copies during the post-promotion
    # analysis, ready for an instant rollback; afterwards it is released.
    kept_warm = _mirrored(live, "1")
    assert kept_warm
    assert live.traffic.read(USE_CASE).routes == (Route("2", 100),)
    assert live.aliases() == {"champion": "2", "previous": "1"}
    assert post.weight == 100


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-failing+blueGreen"], indirect=True)
def test_blue_green_failing_in_preview_never_takes_live_traffic(live: LiveWorld) -> None:
    assert _apply(live) is Health.DEGRADED

    assert live.logged("2") == []
    assert "errorRate" in live.tags("2")[lineage.REJECTED]
    assert live.aliases() == {"champion": "1"}


def _live_times(world: LiveWorld, version: str) -> list[float]:
    log = schema.requests
    query = select(log.c.ts).where(
        log.c.use_case == USE_CASE, log.c.model_version == version, log.c.shadow.is_(False)
    )
    return [float(ts) for ts in world.database.read(lambda db: list(db.scalars(query)))]
