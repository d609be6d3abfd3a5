"""Several `reconciler gateway` processes on one PostgreSQL store, behind a load balancer.

The replicas are real processes started through the CLI, each with its own state folder and
`RECONCILER_DATABASE_URL` naming one database; routes are written into the store as the
reconciler writes them. The load balancer is the players' side of the topology: it sends
each request to the next replica in turn and, when one cannot be reached, takes it out and
sends the request to another - what a health-checking balancer does. Replicas poll the route
table only once a minute here, so a change they pick up within the test's deadline reached
them by NOTIFY. Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from reconciler.gateway.log_queries import window_metrics
from reconciler.observe.state import Route
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore, Writer
from tests.gateway.processes import PROVIDER_KEY, World, gateway_and_process

# Started processes, players and scaled bakes: with the other live tests on one `make test`
# worker (pytest-xdist), so two of them never compete for the two cores.
pytestmark = pytest.mark.xdist_group("live")

USE_CASE = "echo-chat"
# Longer than any wait below: a change seen in time came by NOTIFY, not by a poll.
POLL_SECONDS = "60"


def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(0.05)


@dataclass
class LoadBalancer:
    """Round robin over the replicas that answer; a replica that cannot be reached is taken
    out and the request goes to another. Counts what the players got."""

    replicas: list[str]
    workers: int = 4
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (replica, version)
    failures: list[str] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(range(10_000))

    def start(self) -> LoadBalancer:
        self._threads = [
            threading.Thread(target=self._play, daemon=True) for _ in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def answered(self) -> int:
        with self._guard:
            return sum(self.answers.values())

    def served_by(self, replica: str, version: str | None = None) -> int:
        with self._guard:
            return sum(
                n
                for (where, served), n in self.answers.items()
                if where == replica and version in (None, served)
            )

    def _next(self) -> list[str]:
        with self._guard:
            live = [r for r in self.replicas if r not in self.down]
            turn = next(self._turns)
        return live[turn % len(live) :] + live[: turn % len(live)] if live else []

    def _play(self) -> None:
        body = {"model": USE_CASE, "messages": [{"role": "user", "content": "Any news?"}]}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                for replica in self._next():
                    try:
                        response = client.post(f"{replica}/v1/chat/completions", json=body)
                    except httpx.TransportError:
                        with self._guard:
                            self.down.add(replica)
                        continue
                    with self._guard:
                        if response.status_code == 200:
                            version = response.headers["x-model-version"]
                            self.answers[(replica, version)] += 1
                        else:
                            self.failures.append(f"{response.status_code} {response.text}")
                    break
                else:
                    with self._guard:
                        self.failures.append("no replica could be reached")


def _generation(replica: str) -> int | None:
    health = httpx.get(f"{replica}/healthz", timeout=10).json()
    served = health["use_cases"].get(USE_CASE)
    return None if served is None else int(served["generation"])


@pytest.fixture
def replicas(
    world: World, echo_provider_url: str, postgres_url: str, tmp_path: Path
) -> Iterator[Callable[[str], tuple[str, int]]]:
    """Starts replicas on the test's database; each call returns (URL, pid)."""
    env = {
        "RECONCILER_DATABASE_URL": postgres_url,
        "ECHO_PROVIDER_URL": echo_provider_url,
        "ECHO_PROVIDER_KEY": PROVIDER_KEY,
    }
    with ExitStack() as running:

        def start(name: str) -> tuple[str, int]:
            url, process = running.enter_context(
                gateway_and_process(
                    repo=world.repo,
                    tracking_uri=world.tracking_uri,
                    state_dir=tmp_path / name / "state",
                    cwd=tmp_path,
                    env=env,
                    args=["--route-poll-seconds", POLL_SECONDS],
                )
            )
            # Route changes are pushed once its listener is connected.
            _until(
                lambda: httpx.get(f"{url}/healthz", timeout=10).json()["route_changes"] == "pushed",
                f"replica {name} listening for route changes",
            )
            return url, process.pid

        yield start


@pytest.fixture
def routes(postgres_url: str) -> Iterator[TrafficStore]:
    """The route table as the reconciler writes it, in the replicas' store."""
    database = StateDatabase(postgres_url)
    store = TrafficStore(database)
    store.write(USE_CASE, [Route("1", 100)], writer=Writer.RECONCILER)
    yield store
    database.dispose()


@pytest.mark.integration
def test_two_replicas_honour_a_weight_change_under_load_with_no_failed_request(
    replicas: Callable[[str], tuple[str, int]], routes: TrafficStore
) -> None:
    (first, _), (second, _) = replicas("a"), replicas("b")
    since = time.time()
    players = LoadBalancer([first, second]).start()
    try:
        _until(lambda: players.answered >= 60, "players answered before the change")
        generation = routes.write(
            USE_CASE, [Route("1", 50), Route("2", 50)], writer=Writer.RECONCILER
        )
        # Both replicas switch, long before either would poll again.
        _until(
            lambda: _generation(first) == generation and _generation(second) == generation,
            "both replicas serving the new weights",
        )
        _until(
            lambda: players.served_by(first, "2") >= 25 and players.served_by(second, "2") >= 25,
            "the new version answering on both replicas",
        )
    finally:
        players.stop()
    assert players.failures == []
    for replica in (first, second):
        # Smooth weighted round robin: each replica splits what it got after the switch
        # evenly, whatever the other does.
        assert players.served_by(replica, "2") > 0 and players.served_by(replica, "1") > 0

    # A session gets the same variant from either replica, for the same weights.
    for session in (f"player-{n}" for n in range(30)):
        chosen = {
            httpx.post(
                f"{replica}/v1/chat/completions",
                json={"model": USE_CASE, "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-session-id": session},
                timeout=30,
            ).headers["x-model-version"]
            for replica in (first, second)
        }
        assert len(chosen) == 1, session

    # One log for both: each replica's usage endpoint writes its own queue out first, then
    # the analysis window counts what both of them served.
    for replica in (first, second):
        httpx.get(f"{replica}/admin/usage", timeout=30).raise_for_status()
    window = window_metrics(routes.database, USE_CASE, since=since)
    assert sum(w.requests for w in window.values()) == players.answered + 60
    seen_by_first = httpx.get(
        f"{first}/admin/metrics", params={"use_case": USE_CASE, "since": since}, timeout=30
    ).json()["versions"]
    assert sum(v["requests"] for v in seen_by_first.values()) == players.answered + 60


@pytest.mark.integration
def test_a_replica_killed_mid_load_costs_no_request_and_the_rest_keep_up(
    replicas: Callable[[str], tuple[str, int]], routes: TrafficStore
) -> None:
    (first, _), (second, second_pid) = replicas("a"), replicas("b")
    players = LoadBalancer([first, second]).start()
    try:
        _until(lambda: players.served_by(second) >= 20, "the second replica answering")
        os.kill(second_pid, signal.SIGKILL)
        _until(lambda: second in players.down, "the balancer noticing the dead replica")
        served = players.served_by(first)
        _until(lambda: players.served_by(first) >= served + 40, "the survivor taking the load")
        # The survivor still follows the route table, and a replacement starts on it.
        generation = routes.write(USE_CASE, [Route("3", 100)], writer=Writer.RECONCILER)
        _until(lambda: _generation(first) == generation, "the survivor switching")
        _until(lambda: players.served_by(first, "3") >= 10, "the survivor serving version 3")
        third, _ = replicas("c")
        assert _generation(third) == generation
    finally:
        players.stop()
    assert players.failures == []
    assert players.down == {second}
