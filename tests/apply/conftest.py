"""Fixtures: a registry with a champion and an evaluated candidate, and traffic that follows
the weights (see `world.py`)."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from reconciler import lineage
from reconciler.apply.journal import Journal
from reconciler.gateway.request_log import LoggedRequest, RequestLog, RequestStatus
from reconciler.observe.state import Route
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.spec.loader import load_desired_state
from reconciler.traffic.store import TrafficStore, Writer
from tests.apply.world import USE_CASE, ErrorRule, World


@pytest.fixture
def world(shipped_repo: Path, tmp_path: Path) -> World:
    """npc-dialogue: version 2 is champion with all traffic; 3 is the evaluated candidate."""
    desired = load_desired_state(shipped_repo).state
    assert desired is not None
    identity = desired.identities[USE_CASE]
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    registry = MlflowRegistry(uri)
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
    state_dir = tmp_path / "state"
    traffic = TrafficStore(state_dir / "traffic.db")
    traffic.write(USE_CASE, [Route("2", 100)], writer=Writer.RECONCILER)
    return World(
        repo=shipped_repo,
        state_dir=state_dir,
        tracking_uri=uri,
        desired=desired,
        registry=registry,
        traffic=traffic,
        journal=Journal(state_dir / "journal.db"),
        log_path=state_dir / "requests.db",
    )


@pytest.fixture
def served_traffic(world: World) -> Iterator[Callable[[ErrorRule], None]]:
    """Start traffic that follows the live weights; the test says which requests fail."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    log = RequestLog(world.log_path)
    log.start()

    def start(fails: ErrorRule) -> None:
        rng = random.Random(7)

        def serve() -> None:
            while not stop.is_set():
                routes = world.traffic.read(USE_CASE).routes
                live = [r for r in routes if not r.shadow and r.weight > 0]
                if not live:
                    time.sleep(0.01)
                    continue
                route = rng.choices(live, weights=[r.weight for r in live])[0]
                failed = fails(route.version, route.weight)
                log.append(
                    LoggedRequest(
                        id=uuid.uuid4().hex,
                        ts=time.time(),
                        use_case=USE_CASE,
                        model_version=route.version,
                        endpoint="/v1/chat/completions",
                        request={"messages": [{"role": "user", "content": "hello"}]},
                        status=RequestStatus.ERROR if failed else RequestStatus.OK,
                        latency_ms=5.0,
                        guardrail="pass",
                        route_generation=0,
                        output=None if failed else "Well met, traveller.",
                    )
                )
                time.sleep(0.0005)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    log.stop()
