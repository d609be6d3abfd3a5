"""Fixtures: a registry with a champion and an evaluated candidate, a manual clock, and
traffic that follows the weights (see `world.py`). Every test of the suite runs on both
state stores: SQLite in the state folder, and a real PostgreSQL database of its own."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from reconciler import lineage
from reconciler.apply.journal import Journal
from reconciler.apply.locks import locks_for
from reconciler.clock import ManualClock
from reconciler.gateway.request_log import LoggedRequest, RequestLog, RequestStatus
from reconciler.notifications.dispatcher import Dispatcher, RetrySettings
from reconciler.observe.state import Route
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.spec.loader import load_desired_state
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore, Writer
from tests.apply.world import USE_CASE, ErrorRule, World
from tests.stand_ins.receiver import Receiver, serve_receiver

# Players per second of (manual) time: 36 requests reach a 10% canary in a 30-minute bake.
REQUESTS_PER_SECOND = 0.2
ANSWER = "Well met, traveller."


@pytest.fixture
def world(
    shipped_repo: Path, tmp_path: Path, fresh_sqlite_store: str, state_url: str
) -> Iterator[World]:
    """npc-dialogue: version 2 is champion with all traffic; 3 is the evaluated candidate."""
    made = seeded_world(shipped_repo, tmp_path, fresh_sqlite_store, state_url)
    yield made
    made.database.dispose()


def seeded_world(repo: Path, root: Path, tracking_uri: str, state_url: str) -> World:
    """The world of `world`, on the MLflow store and the state store given."""
    desired = load_desired_state(repo).state
    assert desired is not None
    identity = desired.identities[USE_CASE]
    registry = MlflowRegistry(tracking_uri)
    client: MlflowClient = registry.client
    client.create_registered_model(USE_CASE)
    for key, tags in [
        (identity.base_key, {}),
        ("sha256:an-older-training", {}),
        (
            identity.target_key,
            {
                lineage.EVALUATION_VERDICT: "passed",
                lineage.EVALUATION_DIGEST: identity.digest,
            },
        ),
    ]:
        client.create_model_version(
            USE_CASE, source=f"s3://tests/{key[-6:]}", tags={lineage.KEY: key, **tags}
        )
    client.set_registered_model_alias(USE_CASE, "champion", "2")
    client.set_registered_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "2"})
    )
    state_dir = root / "state"
    clock = ManualClock()
    database = StateDatabase(state_url)
    traffic = TrafficStore(database, clock=clock)
    traffic.write(USE_CASE, [Route("2", 100)], writer=Writer.RECONCILER)
    return World(
        repo=repo,
        state_dir=state_dir,
        tracking_uri=tracking_uri,
        database_url=state_url,
        desired=desired,
        registry=registry,
        database=database,
        locks=locks_for(database, state_dir),
        traffic=traffic,
        journal=Journal(database, clock=clock),
        clock=clock,
    )


@pytest.fixture
def served_traffic(world: World) -> Iterator[Callable[[ErrorRule], None]]:
    """Players that follow the live weights whenever the clock moves; the test says which
    requests fail. Each is logged through the gateway's real request log."""
    log = RequestLog(world.database)
    log.start()
    rng = random.Random(7)
    owed = [0.0]

    def start(fails: ErrorRule) -> None:
        def play(since: float, until: float) -> None:
            owed[0] += (until - since) * REQUESTS_PER_SECOND
            count, owed[0] = int(owed[0]), owed[0] - int(owed[0])
            routes = world.traffic.read(USE_CASE).routes
            live = [r for r in routes if not r.shadow and r.weight > 0]
            if not live or not count:
                return
            for index in range(count):
                ts = since + (until - since) * (index + 0.5) / count
                route = rng.choices(live, weights=[r.weight for r in live])[0]
                request_id = uuid.uuid4().hex
                log.append(
                    _request(request_id, ts, route.version, fails(route.version, route.weight))
                )
                for shadow in (r for r in routes if r.shadow and rng.random() * 100 < r.weight):
                    copy = _request(uuid.uuid4().hex, ts, shadow.version, fails(shadow.version, 0))
                    log.append(
                        copy.__class__(**{**copy.__dict__, "shadow": True, "mirror_of": request_id})
                    )
            log.flush()

        world.clock.on_sleep.append(play)

    yield start
    log.stop()


def _request(request_id: str, ts: float, version: str, failed: bool) -> LoggedRequest:
    return LoggedRequest(
        id=request_id,
        ts=ts,
        use_case=USE_CASE,
        model_version=version,
        endpoint="/v1/chat/completions",
        request={"messages": [{"role": "user", "content": "hello"}]},
        status=RequestStatus.ERROR if failed else RequestStatus.OK,
        latency_ms=5.0,
        guardrail="pass",
        route_generation=0,
        output=None if failed else ANSWER,
    )


# A webhook receiver and a dispatcher that retries quickly: the notification tests' pair.
@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as served:
        yield served


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    made = Dispatcher(retry=RetrySettings(attempts=2, first_wait=0.01, max_wait=0.05))
    yield made
    made.close(5)
