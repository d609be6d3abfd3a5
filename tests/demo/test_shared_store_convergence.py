"""The main job beyond one machine: a shared PostgreSQL store, two gateway replicas and a
controller, each its own process, converge the shipped desired state as the demo does.

The topology of README "Scaling beyond one machine", on one host: `RECONCILER_DATABASE_URL`
names one PostgreSQL database; two `reconciler gateway` processes (each with a state folder
of its own, as on two hosts) serve the players, half of them through each replica; a
`reconciler controller` process, with its own state folder too, reconciles on a schedule. Its
only knowledge of the live traffic is the shared request log both replicas write, and its
route changes reach the replicas only through the shared route table.

The shipped desired state, with what the demo also changes for speed (the LoRA use case trains
for a few steps; bakes are scaled down) and one change for the controller: `story-generation`
is not automated in the shipped files (it waits for `reconciler apply`), so this copy opts it
in with `syncPolicy.automated`. Done when every use case is Synced and Healthy with every
canary step judged, the plan is empty, both replicas served the trained champions, and no
player request failed other than before its use case served anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from reconciler import lineage
from reconciler.child_process import free_port
from reconciler.demo.players import Players
from reconciler.demo.provider import running_provider
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase
from tests.gateway.processes import gateway_process, stop_process

# Started processes, players and scaled bakes: with the other live tests on one `make test`
# worker (pytest-xdist), so two of them never compete for the two cores.
pytestmark = pytest.mark.xdist_group("live")

USE_CASES = ("faction-decision", "npc-dialogue", "story-generation")
TRAINED = ("faction-decision", "npc-dialogue")
# The demo's scale: 30 minutes of bake become 20 seconds.
TIME_SCALE = 20 / 1800
# Half the demo's players on each replica.
CONNECTIONS = {"npc-dialogue": 3, "faction-decision": 2, "story-generation": 1}
CONVERGE_TIMEOUT = 900.0
PROVIDER_KEY = "replica-key-not-a-secret"


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _status(env: dict[str, str], repo: Path, cwd: Path) -> list[dict[str, Any]]:
    shown = _run(["status", "--repo", str(repo), "--output", "json"], env, cwd)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    found = json.loads(shown.stdout)
    return [dict(row) for row in found["use_cases"]]


def _converged(rows: list[dict[str, Any]]) -> bool:
    return {r["name"] for r in rows} == set(USE_CASES) and all(
        r["sync"] == "Synced" and r["health"] == "Healthy" for r in rows
    )


def _prepare(repo: Path, tiny_base_model: Path) -> None:
    shutil.copytree(tiny_base_model, repo / "models" / "tiny-base")
    npc = repo / "desired_state" / "npc-dialogue.yaml"
    npc.write_text(npc.read_text().replace("{epochs: 3,", "{epochs: 1, maxSteps: 8,"))
    story = repo / "desired_state" / "story-generation.yaml"
    text = story.read_text()
    assert "syncPolicy" not in text and text.endswith("\n")
    story.write_text(text + "  syncPolicy: {automated: true, selfHeal: false}\n")


def _start_controller(
    repo: Path, env: dict[str, str], cwd: Path, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "reconciler.cli", "controller"),
            *("--repo", str(repo), "--interval", "5s", "--watch-interval", "1m"),
            *("--time-scale", str(TIME_SCALE)),
        ],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_until_converged(
    controller: subprocess.Popen[bytes], log: Path, observe: Callable[[], list[dict[str, Any]]]
) -> None:
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    rows = observe()
    while not _converged(rows):
        assert controller.poll() is None, log.read_text()[-6000:]
        assert time.monotonic() < deadline, (
            json.dumps(rows, indent=1)[-4000:] + log.read_text()[-6000:]
        )
        time.sleep(5)
        rows = observe()


def _judged_and_logged(database_url: str) -> tuple[set[tuple[str, str, str]], int]:
    """Every (use case, stage, outcome) judged, and how many live requests were logged."""
    database = StateDatabase(database_url)
    judgements, requests = schema.judgements, schema.requests
    try:
        judged = database.read(
            lambda db: db.execute(
                select(judgements.c.use_case, judgements.c.stage, judgements.c.outcome)
            ).all()
        )
        logged = database.read(
            lambda db: db.execute(
                select(func.count()).select_from(requests).where(requests.c.shadow.is_(False))
            ).scalar_one()
        )
    finally:
        database.dispose()
    return {(str(u), str(s), str(o)) for u, s, o in judged}, int(logged)


@pytest.mark.integration
def test_two_replicas_and_a_controller_on_postgresql_converge_the_shipped_state(
    shipped_repo: Path,
    tmp_path: Path,
    tiny_base_model: Path,
    postgres_url: str,
    fresh_sqlite_store: str,
) -> None:
    _prepare(shipped_repo, tiny_base_model)
    # Migrated once before any process starts, as a tracking server's store is: MLflow's
    # sqlite migrations are not safe for several processes creating one store at once.
    tracking = fresh_sqlite_store
    elsewhere = tmp_path / "elsewhere"  # never the copy: its reconciler/ would shadow ours
    elsewhere.mkdir()
    shared = {
        "MLFLOW_TRACKING_URI": tracking,
        "RECONCILER_DATABASE_URL": postgres_url,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }

    def host(name: str) -> dict[str, str]:
        """The environment of one "host": the shared stores, a state folder of its own."""
        env = {**os.environ, **shared, "RECONCILER_STATE_DIR": str(tmp_path / name / "state")}
        env.pop("MLFLOW_REGISTRY_URI", None)
        return env

    controller_log = tmp_path / "controller.log"
    players: list[Players] = []
    with ExitStack() as stack:
        shared["STORY_PROVIDER_BASE_URL"] = stack.enter_context(
            running_provider(tmp_path / "provider", tiny_base_model, free_port())
        )
        shared["STORY_PROVIDER_API_KEY"] = PROVIDER_KEY
        replicas = [
            stack.enter_context(
                gateway_process(
                    repo=shipped_repo,
                    tracking_uri=tracking,
                    state_dir=tmp_path / f"replica-{n}" / "state",
                    cwd=elsewhere,
                    env=shared,
                )
            )
            for n in (1, 2)
        ]
        prompts = _prompts(shipped_repo)
        for seed, url in enumerate(replicas):
            players.append(Players(url, prompts, connections=CONNECTIONS, seed=seed).start())
            stack.callback(players[-1].stop)
        log = stack.enter_context(controller_log.open("wb"))
        controller = _start_controller(shipped_repo, host("controller"), elsewhere, log)
        stack.callback(stop_process, controller)

        _wait_until_converged(
            controller,
            controller_log,
            lambda: _status(host("observer"), shipped_repo, elsewhere),
        )
        # Both replicas serve the trained champions.
        models = MlflowRegistry(tracking).snapshot(list(USE_CASES))
        for url in replicas:
            for name in TRAINED:
                model = models[name]
                assert model is not None
                served = _served_versions(url, name, tries=12)
                assert served == {model.aliases["champion"]}, (url, name, served)

    controller_said = controller_log.read_text()
    for crowd in players:
        assert crowd.answered > 0, crowd.report()
        assert crowd.failed == 0, crowd.report()
    password = urlsplit(postgres_url).password
    assert password and password not in controller_said
    assert PROVIDER_KEY not in controller_said

    for name in TRAINED:
        model = models[name]
        assert model is not None
        champion = model.version(model.aliases["champion"])
        assert champion is not None and champion.tag(lineage.ROLE) == "trained"
        assert model.aliases.get("previous") is not None

    # Every canary step was judged from the shared request log, written by both replicas.
    judged, logged = _judged_and_logged(postgres_url)
    for name in TRAINED:
        assert (name, "100%", "Successful") in judged, sorted(judged)
    assert logged >= sum(crowd.answered for crowd in players)

    replan = _run(
        ["plan", "--repo", str(shipped_repo), "--detailed-exitcode", "--output", "json"],
        host("observer"),
        elsewhere,
    )
    assert replan.returncode == 0, replan.stdout + replan.stderr
    assert {c["action"] for c in json.loads(replan.stdout)["changes"]} == {"noop"}


def _prompts(repo: Path) -> dict[str, list[str]]:
    from reconciler.spec.loader import load_desired_state

    desired = load_desired_state(repo).state
    assert desired is not None
    return Players.prompts_from(
        repo, {u.name: u.spec.evaluation.prompts for u in desired.use_cases}
    )


def _served_versions(url: str, use_case: str, tries: int) -> set[str]:
    """The versions a replica answered `use_case` with, over `tries` sessions."""
    versions = set()
    with httpx.Client(base_url=url, timeout=120) as client:
        for n in range(tries):
            reply = client.post(
                "/v1/chat/completions",
                headers={"x-session-id": f"check-{n}"},
                json={"model": use_case, "messages": [{"role": "user", "content": "Hello"}]},
            )
            assert reply.status_code == 200, reply.text
            versions.add(str(reply.headers.get("x-model-version")))
    return versions
