"""PostgreSQL goes away in the middle of a rollout: the rollout waits for it, or stops cleanly
and resumes; nothing is lost and nothing is half applied.

The rollout runs on the manual clock with players logging through the real request log (see
`world.py`); the database server is the session's real one, stopped with `pg_ctl stop` right
after a canary window was judged, and started again by a helper thread as soon as the
rollout's next transaction has failed at least once - a condition, not a guess at timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bench.postgres_process import PostgresServer
from reconciler.apply.plan_runner import apply_plan
from reconciler.health import Health
from reconciler.observe.state import Route
from reconciler.plan.planned import live_routes
from reconciler.rollout.analysis import AnalysisOutcome
from reconciler.state_store import schema
from tests.apply.test_rollout import never_fails, plan_now
from tests.apply.world import USE_CASE, ErrorRule, World

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("state_url", ["postgresql"], indirect=True),
    # With the other live tests on one `make test` worker (pytest-xdist).
    pytest.mark.xdist_group("live"),
]


class Outage:
    """A clock hook that stops the server once the rollout has judged `after` windows."""

    def __init__(self, world: World, postgres: PostgresServer, *, after: int) -> None:
        self.world = world
        self.postgres = postgres
        self.after = after
        self.happened = threading.Event()
        self.up = threading.Event()
        self.up.set()
        self.retried_before = 0

    def __call__(self, since: float, until: float) -> None:
        if self.happened.is_set() or len(self.world.analyses()) < self.after:
            return
        self.retried_before = self.world.database.retried
        self.up.clear()
        self.postgres.stop("fast")
        self.happened.set()

    def restart_after_a_failed_attempt(self) -> threading.Thread:
        """Start the server again as soon as the rollout has had a transaction fail on it."""

        def restart() -> None:
            if not self.happened.wait(600):
                return
            deadline = time.monotonic() + 120
            while self.world.database.retried == self.retried_before:
                if time.monotonic() > deadline:
                    break  # the test fails on what the rollout did; leave the server up
                time.sleep(0.02)
            self.start()

        thread = threading.Thread(target=restart, daemon=True)
        thread.start()
        return thread

    def start(self) -> None:
        if not self.up.is_set():
            self.postgres.start()
            self.up.set()


def _statuses(world: World) -> list[str]:
    operations = schema.operations
    query = select(operations.c.status).order_by(operations.c.id)
    return list(world.database.read(lambda db: list(db.scalars(query))))


@pytest.fixture
def outage(world: World, postgres: PostgresServer) -> Iterator[Callable[[int], Outage]]:
    made: list[Outage] = []

    def make(after: int) -> Outage:
        made.append(Outage(world, postgres, after=after))
        return made[-1]

    yield make
    for each in made:
        each.start()  # whatever happened, the session's server is left running


def test_a_database_restart_mid_rollout_is_waited_for(
    world: World, served_traffic: Callable[[ErrorRule], None], outage: Callable[[int], Outage]
) -> None:
    served_traffic(never_fails)
    down = outage(1)  # after the 10% window was judged
    world.clock.on_sleep.append(down)  # after the players' hook: this window is logged
    restarter = down.restart_after_a_failed_attempt()

    result = apply_plan(plan_now(world), world.context())

    restarter.join(60)
    assert down.happened.is_set() and world.database.retried > 0
    assert result.health is Health.HEALTHY, "\n".join(world.lines)
    assert world.aliases() == {"champion": "3", "previous": "2"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("3", 100),)
    judged = [(j.stage, j.outcome) for j in world.journal.judgements(USE_CASE)]
    assert judged == [
        (stage, AnalysisOutcome.SUCCESSFUL) for stage in ("10%", "25%", "50%", "75%", "100%")
    ]
    assert [c.version for c in world.journal.history(USE_CASE)] == ["3"]
    assert _statuses(world) == ["succeeded", "skipped"]  # the shift, then promote (done)


def test_a_longer_outage_stops_the_apply_cleanly_and_the_next_one_resumes(
    world: World, served_traffic: Callable[[ErrorRule], None], outage: Callable[[int], Outage]
) -> None:
    served_traffic(never_fails)
    down = outage(2)  # after the 25% window was judged
    world.clock.on_sleep.append(down)
    world.database.retry_seconds = 1.0  # give up on the server quickly

    stopped = apply_plan(plan_now(world), world.context())

    assert down.happened.is_set()
    (outcome,) = stopped.outcomes
    assert outcome.health is Health.DEGRADED and outcome.retryable, outcome
    assert "the state store postgresql://***@" in outcome.message
    assert "unreachable" in outcome.message
    assert str(make_url(world.database_url).password) not in outcome.message
    down.start()

    # Half of nothing: the champion, the routes and the journal are as the last committed
    # step left them - the canary baking at the step after the two judged ones.
    assert world.aliases() == {"champion": "2", "challenger": "3"}
    state = world.journal.rollout(USE_CASE)
    assert state is not None and state.stage.weight > 25
    assert world.traffic.read(USE_CASE).weight_of("3") == state.stage.weight
    # The next apply finds the rollout where it stopped, marks the orphaned row, and ends it.
    resumed = apply_plan(plan_now(world), world.context())
    assert resumed.health is Health.HEALTHY, "\n".join(world.lines)
    assert any("resuming the rollout of 3" in line for line in world.lines)
    assert world.aliases() == {"champion": "3", "previous": "2"}
    judged = [(j.stage, j.outcome) for j in world.journal.judgements(USE_CASE)]
    assert [stage for stage, _ in judged] == ["10%", "25%", "50%", "75%", "100%"]
    assert all(outcome is AnalysisOutcome.SUCCESSFUL for _, outcome in judged)
    assert [c.version for c in world.journal.history(USE_CASE)] == ["3"]
    # The row the outage left `running` was marked interrupted under the lock.
    assert _statuses(world) == ["interrupted", "succeeded", "skipped"]
