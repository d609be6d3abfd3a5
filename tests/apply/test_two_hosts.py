"""Two hosts, one PostgreSQL store: `reconciler apply` processes serialise per use case.

Each "host" is a `reconciler apply` process with a state folder of its own; what they share
is the database in `RECONCILER_DATABASE_URL` (and the MLflow store). The first takes the use
case's advisory lock and starts the canary; a second that will not wait is refused with a
message naming the first (pid and host); a third that waits takes the lock only once the
first has let it go, and resumes the very rollout the first left, from the shared journal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select, text

from reconciler.rollout.state import Control
from reconciler.state_store import schema
from reconciler.state_store.advisory_locks import AdvisoryLocks
from tests.apply.world import USE_CASE, World

# Started processes, players and scaled bakes: with the other live tests on one `make test`
# worker (pytest-xdist), so two of them never compete for the two cores.
pytestmark = pytest.mark.xdist_group("live")

# The shipped 30m bakes take 15 s: time enough for the other hosts to start meanwhile.
TIME_SCALE = 15 / 1800


def _until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(0.05)


def _apply(world: World, host: str, lock_timeout: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": world.tracking_uri,
        "RECONCILER_DATABASE_URL": world.database_url,
        "RECONCILER_STATE_DIR": str(world.state_dir.parent / host),
    }
    env.pop("MLFLOW_REGISTRY_URI", None)
    return subprocess.Popen(
        [
            sys.executable, "-m", "reconciler.cli", "apply", "--repo", str(world.repo),
            "--use-case", USE_CASE, "--auto-approve", "--lock-timeout", str(lock_timeout),
            "--time-scale", str(TIME_SCALE),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _baking(world: World) -> bool:
    state = world.journal.rollout(USE_CASE)
    return state is not None and state.stage_started_at is not None


def _lock_sessions(world: World) -> int:
    """Sessions holding or trying for a use-case lock (each opens one of its own)."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reconciler lock'")
    return int(world.database.read(lambda db: db.execute(query).scalar_one()))


@pytest.mark.integration
@pytest.mark.parametrize("state_url", ["postgresql"], indirect=True)
def test_applies_on_two_hosts_take_turns_per_use_case(world: World) -> None:
    locks = AdvisoryLocks(world.database)
    first = _apply(world, "host-a", lock_timeout=0)
    started = [first]
    try:
        _until(lambda: locks.holder(USE_CASE) is not None, "the first host holding the lock")
        assert f"pid {first.pid} on " in str(locks.holder(USE_CASE))
        # Its canary is baking: from here on it changes neither routes nor aliases, so the
        # other hosts' plans stay current while they wait.
        _until(lambda: _baking(world), "the first host's canary baking")
        impatient = _apply(world, "host-b", lock_timeout=0)
        patient = _apply(world, "host-c", lock_timeout=120)
        started += [impatient, patient]
        refused, _ = impatient.communicate(timeout=120)
        assert impatient.returncode == 1, refused
        assert f"being reconciled by pid {first.pid} on " in refused
        # The patient one is trying for the lock the first still holds...
        _until(lambda: _lock_sessions(world) >= 2, "the third host waiting for the lock")
        assert first.poll() is None
        # ...until an operator pauses the first host's rollout, which ends its apply.
        world.journal.request(USE_CASE, Control.PAUSE)
        said, _ = first.communicate(timeout=120)
        assert first.returncode == 0, said
        resumed, _ = patient.communicate(timeout=120)
        assert patient.returncode == 0, resumed
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "resuming the rollout of 3" in resumed, resumed

    operations = schema.operations
    rows = world.database.read(
        lambda db: db.execute(
            select(operations.c.pid, operations.c.started_at, operations.c.finished_at).order_by(
                operations.c.id
            )
        ).all()
    )
    by_first = [row for row in rows if row.pid == first.pid]
    by_third = [row for row in rows if row.pid == patient.pid]
    assert by_first and by_third and not [row for row in rows if row.pid == impatient.pid]
    # One after the other: the first host's last operation ended before the third's began.
    assert rows.index(by_first[-1]) < rows.index(by_third[0])
    assert all(row.finished_at is not None for row in by_first)
    assert by_first[-1].finished_at <= by_third[0].started_at
    assert locks.holder(USE_CASE) is None
