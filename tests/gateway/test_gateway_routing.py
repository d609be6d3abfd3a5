"""Routing through the running gateway: weights, live weight changes, sticky sessions, shadows."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

import httpx
import pytest

from reconciler.gateway.log_queries import window_metrics
from tests.gateway.processes import RunningGateway

# Started processes, players and scaled bakes: with the other live tests on one `make test`
# worker (pytest-xdist), so two of them never compete for the two cores.
pytestmark = pytest.mark.xdist_group("live")

CHAT = {"model": "echo-chat", "messages": [{"role": "user", "content": "hello"}]}


async def _send_many(
    url: str, count: int, *, concurrency: int = 32, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> httpx.Response:
            async with semaphore:
                return await client.post("/v1/chat/completions", json=CHAT, headers=headers)

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_weights_are_honoured_over_thousands_of_requests(gateway: RunningGateway) -> None:
    gateway.set_routes(
        "echo-chat",
        [
            {"version": "1", "weight": 70},
            {"version": "2", "weight": 20},
            {"version": "3", "weight": 10},
        ],
    )
    responses = asyncio.run(_send_many(gateway.url, 2000))
    assert {r.status_code for r in responses} == {200}
    served = Counter(r.headers["x-model-version"] for r in responses)
    shares = {version: count / len(responses) for version, count in served.items()}
    assert abs(shares["1"] - 0.70) < 0.02
    assert abs(shares["2"] - 0.20) < 0.02
    assert abs(shares["3"] - 0.10) < 0.02
    body = responses[0].json()
    assert body["model"] == "echo-chat"
    assert body["model_version"] == responses[0].headers["x-model-version"]


def test_a_weight_change_under_load_loses_no_request(gateway: RunningGateway) -> None:
    gateway.set_routes("echo-chat", [{"version": "1", "weight": 100}])
    shifts = (
        [{"version": "1", "weight": 50}, {"version": "2", "weight": 50}],
        [{"version": "2", "weight": 100}],
    )

    async def load_while_shifting() -> list[httpx.Response]:
        responses: list[httpx.Response] = []
        shifted = asyncio.Event()

        async def worker(client: httpx.AsyncClient) -> None:
            # Keep requests in flight until every shift is served (bounded for safety).
            while not shifted.is_set() and len(responses) < 20_000:
                responses.append(await client.post("/v1/chat/completions", json=CHAT))

        async def shifter() -> None:
            for routes in shifts:
                while len(responses) < 100:
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(gateway.set_routes, "echo-chat", routes)
                await asyncio.sleep(0.3)  # traffic on the new routes before the next shift
            shifted.set()

        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            await asyncio.gather(shifter(), *(worker(client) for _ in range(32)))
        return responses

    responses = asyncio.run(load_while_shifting())
    assert [r.status_code for r in responses if r.status_code != 200] == []
    served = Counter(r.headers["x-model-version"] for r in responses)
    assert served["1"] > 0 and served["2"] > 0
    after = asyncio.run(_send_many(gateway.url, 50))
    assert {r.headers["x-model-version"] for r in after} == {"2"}


def test_a_session_stays_on_its_variant(gateway: RunningGateway) -> None:
    gateway.set_routes(
        "echo-chat", [{"version": "1", "weight": 50}, {"version": "2", "weight": 50}]
    )
    seen: dict[str, set[str]] = {}
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for round_ in range(5):
            for player in range(30):
                session = f"player-{player}"
                response = client.post(
                    "/v1/chat/completions", json=CHAT, headers={"x-session-id": session}
                )
                assert response.status_code == 200, (round_, response.text)
                seen.setdefault(session, set()).add(response.headers["x-model-version"])
    assert all(len(versions) == 1 for versions in seen.values())
    assert {v for versions in seen.values() for v in versions} == {"1", "2"}


async def _versions_of_sessions(url: str, sessions: list[str]) -> dict[str, str]:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        semaphore = asyncio.Semaphore(16)

        async def one(session: str) -> tuple[str, str]:
            async with semaphore:
                response = await client.post(
                    "/v1/chat/completions", json=CHAT, headers={"x-session-id": session}
                )
            assert response.status_code == 200, response.text
            return session, response.headers["x-model-version"]

        return dict(await asyncio.gather(*(one(s) for s in sessions)))


def test_sessions_hold_across_route_rewrites_and_canary_steps(gateway: RunningGateway) -> None:
    sessions = [f"player-{i}" for i in range(400)]
    served: list[dict[str, str]] = []
    for weight in (10, 10, 25, 50):  # the same table written twice, then canary steps
        gateway.set_routes(
            "echo-chat",
            [{"version": "1", "weight": 100 - weight}, {"version": "2", "weight": weight}],
        )
        served.append(asyncio.run(_versions_of_sessions(gateway.url, sessions)))
    assert served[1] == served[0]  # a rewrite with the same weights moves nobody
    for lower, higher in itertools.pairwise(served[1:]):
        on_canary = {s for s, version in lower.items() if version == "2"}
        assert on_canary, "the canary had no sessions"
        # Every player the canary had at the lower weight is still on it at the higher one.
        assert {s for s in on_canary if higher[s] != "2"} == set()
    share = sum(version == "2" for version in served[-1].values()) / len(sessions)
    assert abs(share - 0.5) < 0.1
    gateway.set_routes("echo-chat", [{"version": "1", "weight": 100}])


def test_shadow_copies_are_logged_and_never_returned(gateway: RunningGateway) -> None:
    gateway.set_routes(
        "echo-chat",
        [{"version": "1", "weight": 100}, {"version": "3", "weight": 100, "shadow": True}],
    )
    since = time.time()
    responses = asyncio.run(_send_many(gateway.url, 40, concurrency=8))
    assert {r.headers["x-model-version"] for r in responses} == {"1"}
    ids = {r.json()["id"] for r in responses}
    # The usage endpoint flushes the request log; shadow calls may still be finishing.
    deadline = time.monotonic() + 10
    while True:
        httpx.get(f"{gateway.url}/admin/usage", timeout=30).raise_for_status()
        shadow = window_metrics(gateway.world.database, "echo-chat", since=since, shadow=True)
        if (shadow.get("3") and shadow["3"].requests == 40) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert shadow["3"].requests == 40
    live = window_metrics(gateway.world.database, "echo-chat", since=since)
    assert set(live) == {"1"} and live["1"].requests == 40

    import sqlite3

    with sqlite3.connect(gateway.world.state_db) as db:
        mirrored = {
            row[0]
            for row in db.execute(
                "SELECT mirror_of FROM requests WHERE shadow = 1 AND ts >= ?", (since,)
            )
        }
    assert mirrored == ids
    gateway.set_routes("echo-chat", [{"version": "1", "weight": 100}])
