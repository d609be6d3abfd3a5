"""The request log keeps logging under hostile input, and /healthz tells when it cannot.

A lone UTF-16 surrogate is refused at the door with a 400 naming the field; a record the
writer cannot store anyway is counted and skipped, never the end of the log; a writer that
stopped or is stuck makes /healthz unhealthy; the queue is bounded and a full queue drops
(and counts) rather than blocking the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.child_process import free_port
from reconciler.gateway.catalog import ProviderSettings, UseCaseCatalog, UseCaseProfile
from reconciler.gateway.composition import build_gateway
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.request_log import (
    LoggedRequest,
    RequestLog,
    RequestLogUnavailableError,
    RequestStatus,
)
from reconciler.gateway.server import GatewayServer
from reconciler.observe.state import Route
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore, Writer
from tests.gateway.processes import RunningGateway, World


def _record(id: str, output: str = "fine") -> LoggedRequest:
    return LoggedRequest(
        id=id,
        ts=time.time(),
        use_case="npc",
        model_version="1",
        endpoint="chat",
        request={"messages": [{"role": "user", "content": "hi"}]},
        status=RequestStatus.OK,
        latency_ms=1.0,
        guardrail="pass",
        route_generation=1,
        output=output,
    )


def _post_raw(url: str, path: str, body: str) -> httpx.Response:
    # Written by hand: the JSON escape \ud800 is what a hostile client sends.
    return httpx.post(
        f"{url}{path}",
        content=body.encode(),
        headers={"content-type": "application/json"},
        timeout=30,
    )


def test_a_lone_surrogate_is_a_400_naming_the_field_and_the_log_goes_on(
    gateway: RunningGateway,
) -> None:
    gateway.set_routes("echo-chat", [{"version": "1", "weight": 100}])
    chat = _post_raw(
        gateway.url,
        "/v1/chat/completions",
        '{"model": "echo-chat", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
    )
    assert chat.status_code == 400, chat.text
    assert chat.json()["error"]["param"] == "messages.0.content"
    assert chat.json()["error"]["code"] == "invalid_unicode"
    text = _post_raw(gateway.url, "/v1/completions", '{"model": "echo-chat", "prompt": "a\\ud800"}')
    assert text.status_code == 400 and text.json()["error"]["param"] == "prompt"
    feedback = _post_raw(
        gateway.url, "/v1/feedback", '{"id": "gw-x", "corrected_output": "\\udfff"}'
    )
    assert feedback.status_code == 400
    assert feedback.json()["error"]["param"] == "corrected_output"

    # Everything after is served and logged as before.
    def usage() -> dict[str, int]:
        # The usage endpoint writes out what is queued before it counts.
        answer = httpx.get(
            f"{gateway.url}/admin/usage", params={"use_case": "echo-chat"}, timeout=30
        )
        rows = answer.json()["versions"]
        return {row["version"]: row["requests"] for row in rows if not row["shadow"]}

    before = usage()
    served = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "echo-chat", "messages": [{"role": "user", "content": "still there?"}]},
        timeout=30,
    )
    assert served.status_code == 200
    assert usage()["1"] == before.get("1", 0) + 1
    health = httpx.get(f"{gateway.url}/healthz", timeout=30)
    assert health.status_code == 200
    assert health.json()["request_log"]["healthy"] is True


@pytest.fixture
def request_log(state_database: StateDatabase) -> Iterator[RequestLog]:
    log = RequestLog(state_database, queue_limit=4)
    log.start()
    yield log
    log.stop()


def test_the_writer_outlives_a_record_it_cannot_store(request_log: RequestLog) -> None:
    # A lone surrogate that got past every check: no UTF-8 encoder accepts it.
    request_log.append(_record("before"))
    request_log.append(_record("poison", output="bad \ud800 text"))
    request_log.append(_record("after"))
    request_log.flush()
    failing = request_log.submit(lambda db: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(10)
    request_log.append(_record("later"))
    request_log.flush()

    health = request_log.health()
    assert health.healthy and request_log.running
    assert (health.written, health.failed) == (3, 1)
    assert health.last_failure is not None and "UnicodeEncodeError" in health.last_failure
    assert "\ud800" not in health.last_failure  # shown, it must be encodable itself


def _hold_the_writer(request_log: RequestLog) -> threading.Event:
    """Keep the writer busy in one job until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def job(db: Any) -> None:
        started.set()
        release.wait(60)

    request_log.submit(job)
    assert started.wait(30)
    return release


def test_a_full_queue_drops_and_counts_and_never_waits(request_log: RequestLog) -> None:
    release = _hold_the_writer(request_log)
    try:
        for index in range(7):
            request_log.append(_record(f"r{index}"))  # returns at once, full or not
        refused = request_log.submit(lambda db: None)
        assert refused.done()
        with pytest.raises(RequestLogUnavailableError, match="queue is full"):
            refused.result(0)
    finally:
        release.set()
    request_log.flush()
    health = request_log.health()
    assert (health.written, health.dropped) == (4, 4)  # 4 fitted; 3 records and a job did not


def _in_process_gateway(
    tmp_path: Path, world: World, echo_provider_url: str, **config: Any
) -> GatewayServer:
    catalog = UseCaseCatalog.of(
        [
            UseCaseProfile(
                name="logged-chat",
                registered_model="echo-chat",
                providers=(ProviderSettings("echo-large", base_url=echo_provider_url),),
            )
        ]
    )
    state = tmp_path / "state"
    settings = GatewayConfig(
        port=free_port(),
        state_dir=state,
        tracking_uri=world.tracking_uri,
        **config,
    )
    TrafficStore(StateDatabase(settings.database)).write(
        "logged-chat", [Route("1", 100)], writer=Writer.RECONCILER
    )
    return GatewayServer(build_gateway(settings, catalog=catalog))


def test_a_stopped_writer_makes_the_gateway_unhealthy_and_answers_do_not_hang(
    tmp_path: Path, world: World, echo_provider_url: str
) -> None:
    with _in_process_gateway(tmp_path, world, echo_provider_url) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        server.gateway.request_log.stop()

        health = httpx.get(f"{server.url}/healthz", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert "not running" in health.json()["request_log"]["reason"]
        for response in (
            httpx.post(f"{server.url}/v1/feedback", json={"id": "gw-1", "rating": 1.0}, timeout=10),
            httpx.get(f"{server.url}/admin/usage", timeout=10),
            httpx.get(
                f"{server.url}/admin/metrics",
                params={"use_case": "logged-chat", "since": 0},
                timeout=10,
            ),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "request_log_unavailable"
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "gateway_request_log_writer_up 0" in metrics


def test_a_stuck_writer_makes_the_gateway_unhealthy_until_it_moves(
    tmp_path: Path, world: World, echo_provider_url: str
) -> None:
    # Stuck means "in one batch longer than the stall limit"; at 0 s, any batch in progress.
    with _in_process_gateway(
        tmp_path, world, echo_provider_url, request_log_stall_seconds=0.0
    ) as server:
        release = _hold_the_writer(server.gateway.request_log)
        try:
            stuck = httpx.get(f"{server.url}/healthz", timeout=10)
            assert stuck.status_code == 503
            assert "stuck" in stuck.json()["request_log"]["reason"]
            # A player is still answered: logging never holds up the event loop.
            served = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": "logged-chat", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert served.status_code == 200
        finally:
            release.set()
        server.gateway.request_log.flush()
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
