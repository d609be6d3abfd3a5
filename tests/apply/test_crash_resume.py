"""kill -9 at every stage of an apply, then resume: the world stays consistent and converges.

`reconciler apply` runs in a subprocess against a real gateway (in this process) serving
simulated players. The test watches the journal from outside and sends SIGKILL when the apply
reaches each crash point; after every kill it checks the invariants, then starts the next
apply, which must pick up where the last one died. The last apply runs to the end.

Invariants: live weights sum to 100 and name existing versions; `champion` names an existing
version; at most one version per idempotency key (and training attempt). And the rollout's
promise: killed while the candidate bakes at 100%, the next apply bakes and judges 100% again
before it promotes - the routes already showing 100% prove nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler import lineage
from reconciler.child_process import free_port
from reconciler.observe.state import ObservedState
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.settings import DATABASE_FILE, Settings
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore

USE_CASE = "npc-dialogue"
TIME_SCALE = 2.5 / 1800  # 30m bakes take 2.5 s
# A window with too few requests pauses the rollout; a controller would sync again, so do we.
FINAL_ROUNDS = 4
ATTEMPTS_PER_POINT = 4


def _journal_rows(db: Path, query: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return connection.execute(query).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []


def operation(action: str, status: str, nth: int = 1) -> Callable[[Path], bool]:
    def reached(db: Path) -> bool:
        rows = _journal_rows(
            db,
            f"SELECT id FROM operations WHERE action = '{action}' AND status = '{status}'",
        )
        return len(rows) >= nth

    reached.__name__ = f"{action}-{status}-{nth}"
    return reached


def canary_passed(weight: int) -> Callable[[Path], bool]:
    def reached(db: Path) -> bool:
        query = f"SELECT 1 FROM judgements WHERE stage = '{weight}%' AND outcome = 'Successful'"
        return bool(_journal_rows(db, query))

    reached.__name__ = f"canary-passed-{weight}"
    return reached


def baking_at(weight: int) -> Callable[[Path], bool]:
    """The rollout stands at `weight` with its window open: it is baking there."""

    def reached(db: Path) -> bool:
        for (state_json,) in _journal_rows(db, "SELECT state FROM rollouts"):
            state = json.loads(str(state_json))
            stage = state["stages"][state["stage_index"]]
            if stage["weight"] == weight and state["stage_started_at"] is not None:
                return state["phase"] == "Progressing"
        return False

    reached.__name__ = f"baking-at-{weight}"
    return reached


CRASH_POINTS = [
    operation("register", "succeeded"),
    operation("promote", "succeeded"),  # the base serves
    operation("train", "running"),
    operation("evaluate", "running"),
    canary_passed(10),
    canary_passed(50),
    baking_at(100),  # the routes show 100%, nothing has judged it yet
]


@pytest.fixture
def demo_world(
    shipped_repo: Path, tmp_path: Path, tiny_base_model: Path
) -> Iterator[tuple[Path, dict[str, str]]]:
    import shutil

    from reconciler.demo.players import Players
    from reconciler.gateway.composition import build_gateway
    from reconciler.gateway.config import GatewayConfig
    from reconciler.gateway.server import GatewayServer
    from reconciler.spec.loader import load_desired_state

    shutil.copytree(tiny_base_model, shipped_repo / "models" / "tiny-base")
    spec = shipped_repo / "desired_state" / "npc-dialogue.yaml"
    spec.write_text(
        # A few training steps are enough to exercise every stage.
        spec.read_text()
        .replace("{epochs: 3,", "{epochs: 1, maxSteps: 6,")
        # 2.5-second bakes at a 10% canary see a handful of requests, not the shipped 20.
        .replace("failureLimit: 2", "failureLimit: 2\n      minRequests: 5")
    )
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        "RECONCILER_STATE_DIR": str(tmp_path / "state"),
    }
    settings = Settings.from_environment(env)
    desired = load_desired_state(shipped_repo).state
    assert desired is not None
    config = GatewayConfig.from_settings(settings, port=free_port(), repo=shipped_repo)
    with GatewayServer(build_gateway(config)) as gateway:
        prompts = Players.prompts_from(
            shipped_repo, {USE_CASE: desired.use_case(USE_CASE).spec.evaluation.prompts}
        )
        players = Players(gateway.url, prompts, connections={USE_CASE: 4}).start()
        try:
            yield shipped_repo, env
        finally:
            players.stop()


def _apply(repo: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.cli",
            "apply",
            "--repo",
            str(repo),
            "--use-case",
            USE_CASE,
            "--auto-approve",
            "--lock-timeout",
            "30",
            "--time-scale",
            str(TIME_SCALE),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _check_invariants(env: dict[str, str]) -> ObservedState:
    settings = Settings.from_environment(env)
    model = MlflowRegistry(settings.tracking_uri).snapshot([USE_CASE])[USE_CASE]
    routes = TrafficStore(StateDatabase(settings.database)).read(USE_CASE).routes
    live = [r for r in routes if not r.shadow and r.weight > 0]
    if live:
        assert sum(r.weight for r in live) == 100
        assert model is not None
        assert all(model.version(r.version) is not None for r in live), live
    if model is not None:
        champion = model.aliases.get("champion")
        assert champion is None or model.version(champion) is not None
        keys = Counter(
            (v.tag(lineage.KEY), v.tag("reconciler.training.attempt"))
            for v in model.versions
            if v.tag(lineage.KEY)
        )
        assert all(count == 1 for count in keys.values()), keys
    return ObservedState(registry={USE_CASE: model}, traffic={})


@pytest.mark.integration
def test_kill_9_at_every_stage_then_resume_converges(
    demo_world: tuple[Path, dict[str, str]],
) -> None:
    repo, env = demo_world
    journal = Path(env["RECONCILER_STATE_DIR"]) / DATABASE_FILE
    killed_at = []
    outputs = []
    for reached in CRASH_POINTS:
        # An apply that ends before the crash point (a window paused for too little traffic on
        # a loaded machine) is simply applied again, as a controller would.
        for _ in range(ATTEMPTS_PER_POINT):
            process = _apply(repo, env)
            deadline = time.monotonic() + 240
            while not reached(journal) and process.poll() is None:
                assert time.monotonic() < deadline, f"{reached.__name__} never reached"
                time.sleep(0.02)
            killed = process.poll() is None
            if killed:
                os.kill(process.pid, signal.SIGKILL)
                killed_at.append(reached.__name__)
            assert process.stdout is not None
            outputs.append(f"--- until {reached.__name__}\n" + process.stdout.read().decode())
            process.wait()
            _check_invariants(env)
            if killed or reached(journal):
                break
    assert len(killed_at) >= len(CRASH_POINTS) - 1, (killed_at, "\n".join(outputs))
    killed_in_final_bake = time.time()

    for _ in range(FINAL_ROUNDS):
        final = _apply(repo, env)
        output = final.communicate(timeout=300)[0].decode()
        assert final.returncode == 0, output
        if "Suspended" not in output:
            break
    observed = _check_invariants(env)
    model = observed.registry[USE_CASE]
    assert model is not None
    champion = model.version(model.aliases["champion"])
    assert champion is not None and champion.tag(lineage.ROLE) == "trained"
    # Killed while baking at 100%: promoted only after 100% was judged again, afterwards.
    assert killed_at[-1] == "baking-at-100", killed_at
    final = [
        json.loads(str(body))
        for (body,) in _journal_rows(
            journal, "SELECT body FROM judgements WHERE final = 1 AND outcome = 'Successful'"
        )
    ]
    assert final and final[-1]["candidate"] == champion.version
    assert final[-1]["window_end"] > killed_in_final_bake, final[-1]  # judged after the kill
    history = _journal_rows(journal, "SELECT version FROM history ORDER BY id")
    assert history[-1] == (champion.version,)

    replan = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler.cli",
            "plan",
            "--repo",
            str(repo),
            "--use-case",
            USE_CASE,
            "--detailed-exitcode",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert replan.returncode == 0, replan.stdout + replan.stderr
