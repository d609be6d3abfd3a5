"""A gateway started from Python (`GatewayServer`) with an injected guard and no admin token."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from reconciler.child_process import free_port
from reconciler.gateway.catalog import ProviderSettings, UseCaseCatalog, UseCaseProfile
from reconciler.gateway.composition import build_gateway
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.guard import GuardAction, GuardDecision, OutputGuard
from reconciler.gateway.log_queries import read_exchanges, window_metrics
from reconciler.gateway.server import GatewayServer
from reconciler.observe.state import Route
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore, Writer
from tests.gateway.processes import World


class KeywordGuard:
    """Blocks 'forbidden', redacts 'secret', and lets 'grim' through as a logged violation."""

    def inspect_batch(
        self, use_case: str, version: str, texts: Sequence[str]
    ) -> list[GuardDecision]:
        return [self._decide(text) for text in texts]

    @staticmethod
    def _decide(text: str) -> GuardDecision:
        if "forbidden" in text:
            return GuardDecision(GuardAction.BLOCK, "I cannot say that.", ("forbidden-word",))
        if "secret" in text:
            return GuardDecision(GuardAction.REPLACE, "[redacted]", ("secret-leak",))
        if "grim" in text:
            return GuardDecision(GuardAction.PASS, None, ("grim-tone",))
        return GuardDecision()


class SlowCountingGuard(KeywordGuard):
    """Takes 50 ms per call, whatever the batch, and remembers each batch's size."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def inspect_batch(
        self, use_case: str, version: str, texts: Sequence[str]
    ) -> list[GuardDecision]:
        self.batches.append(len(texts))
        time.sleep(0.05)
        return super().inspect_batch(use_case, version, texts)


def _guarded_server(
    tmp_path: Path, world: World, echo_provider_url: str, guard: OutputGuard
) -> GatewayServer:
    catalog = UseCaseCatalog.of(
        [
            UseCaseProfile(
                name="guarded-chat",
                registered_model="echo-chat",
                providers=(ProviderSettings("echo-large", base_url=echo_provider_url),),
            )
        ]
    )
    state = tmp_path / "state"
    config = GatewayConfig(
        port=free_port(),
        state_dir=state,
        tracking_uri=world.tracking_uri,
        admin_token=None,
        route_poll_seconds=0.1,
    )
    TrafficStore(StateDatabase(config.database)).write(
        "guarded-chat", [Route("2", 100)], writer=Writer.RECONCILER
    )
    return GatewayServer(build_gateway(config, catalog=catalog, guard=guard))


@pytest.fixture
def guarded_server(tmp_path: Path, world: World, echo_provider_url: str) -> Iterator[GatewayServer]:
    with _guarded_server(tmp_path, world, echo_provider_url, KeywordGuard()) as server:
        yield server


def _say(server: GatewayServer, text: str) -> httpx.Response:
    body = {"model": "guarded-chat", "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)


def test_the_guard_sees_every_output_before_the_caller(guarded_server: GatewayServer) -> None:
    since = time.time()
    blocked = _say(guarded_server, "say forbidden things").json()
    assert blocked["choices"][0]["message"]["content"] == "I cannot say that."
    assert blocked["choices"][0]["finish_reason"] == "content_filter"
    redacted = _say(guarded_server, "tell the secret").json()
    assert redacted["choices"][0]["message"]["content"] == "[redacted]"
    grim = _say(guarded_server, "a grim tale").json()
    assert grim["choices"][0]["message"]["content"] == "echo[echo-large]: a grim tale"
    _say(guarded_server, "a happy tale")

    log_path = guarded_server.gateway.request_log.database
    guarded_server.gateway.request_log.flush()
    window = window_metrics(log_path, "guarded-chat", since=since)["2"]
    assert window.requests == 4
    assert window.guardrail_violations == 3
    assert window.guardrail_violation_rate == pytest.approx(0.75)
    # Only outputs that passed untouched are training data.
    kept = [e.output for e in read_exchanges(log_path, "guarded-chat", since=since)]
    assert sorted(kept) == ["echo[echo-large]: a grim tale", "echo[echo-large]: a happy tale"]

    metrics = httpx.get(f"{guarded_server.url}/metrics", timeout=30).text
    assert (
        'gateway_guardrail_violations_total{use_case="guarded-chat",version="2",'
        'shadow="false",action="block"} 1' in metrics
    )


def test_concurrent_outputs_are_checked_in_batches(
    tmp_path: Path, world: World, echo_provider_url: str
) -> None:
    guard = SlowCountingGuard()
    with _guarded_server(tmp_path, world, echo_provider_url, guard) as server:
        _say(server, "warm up")
        guard.batches.clear()
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(pool.map(lambda i: _say(server, f"tale {i}"), range(32)))
    assert [r.status_code for r in replies] == [200] * 32
    assert sum(guard.batches) == 32  # every output was checked, once
    # While one batch is checked the next ones gather: far fewer calls than outputs.
    assert len(guard.batches) < 16, guard.batches
    assert max(guard.batches) > 1


class CoolHeadGuard(KeywordGuard):
    """Asks for a regeneration (adjust_parameters) of any answer sampled hotter than 0.3;
    with `stubborn`, of every answer."""

    def __init__(self, *, stubborn: bool = False) -> None:
        self.stubborn = stubborn

    def inspect_batch(
        self, use_case: str, version: str, texts: Sequence[str]
    ) -> list[GuardDecision]:
        return [
            GuardDecision()
            if "temperature=0.3" in text and not self.stubborn
            else GuardDecision(GuardAction.REGENERATE, None, ("tone:test/too-wild:medium",))
            for text in texts
        ]


def _hot(server: GatewayServer) -> httpx.Response:
    body = {
        "model": "guarded-chat",
        "temperature": 0.9,
        "messages": [{"role": "user", "content": "a tale, show-sampling"}],
    }
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)


def test_adjust_parameters_regenerates_with_conservative_sampling(
    tmp_path: Path, world: World, echo_provider_url: str
) -> None:
    with _guarded_server(tmp_path, world, echo_provider_url, CoolHeadGuard()) as server:
        since = time.time()
        reply = _hot(server).json()
        server.gateway.request_log.flush()
        log_path = server.gateway.request_log.database
        window = window_metrics(log_path, "guarded-chat", since=since)["2"]
    answer = reply["choices"][0]["message"]["content"]
    assert "temperature=0.3" in answer and "top_p=0.8" in answer
    assert reply["choices"][0]["finish_reason"] == "stop"
    # The first answer's finding is charged to the version, and it is not training data.
    assert window.guardrail_violations == 1
    assert (
        list(read_exchanges(log_path, "guarded-chat", since=since, without_violations=True)) == []
    )


def test_an_answer_still_flagged_after_regenerating_is_blocked(
    tmp_path: Path, world: World, echo_provider_url: str
) -> None:
    guard = CoolHeadGuard(stubborn=True)
    with _guarded_server(tmp_path, world, echo_provider_url, guard) as server:
        reply = _hot(server).json()
    assert reply["choices"][0]["finish_reason"] == "content_filter"
    assert reply["choices"][0]["message"]["content"] == ""


def test_admin_writes_are_off_without_a_token(guarded_server: GatewayServer) -> None:
    response = httpx.put(
        f"{guarded_server.url}/admin/routes/guarded-chat",
        json=[{"version": "1", "weight": 100}],
        headers={"Authorization": "Bearer anything"},
        timeout=30,
    )
    assert response.status_code == 403
    assert "RECONCILER_GATEWAY_TOKEN" in response.json()["error"]["message"]


def test_route_table_changes_are_served_without_a_restart(
    guarded_server: GatewayServer,
) -> None:
    assert _say(guarded_server, "hi").headers["x-model-version"] == "2"
    guarded_server.gateway.store.write("guarded-chat", [Route("3", 100)], writer=Writer.RECONCILER)
    deadline = time.monotonic() + 10
    while _say(guarded_server, "hi").headers["x-model-version"] != "3":
        assert time.monotonic() < deadline, "the new routes were never served"
        time.sleep(0.05)


def test_stop_releases_the_port(world: World, echo_provider_url: str, tmp_path: Path) -> None:
    config = GatewayConfig(
        port=free_port(),
        state_dir=tmp_path / "s",
        tracking_uri=world.tracking_uri,
    )
    server = GatewayServer(build_gateway(config, catalog=UseCaseCatalog())).start()
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=2)
