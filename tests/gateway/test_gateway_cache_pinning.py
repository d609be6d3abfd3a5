"""Live route targets stay loaded: a gateway whose cache bound is below the number of
versions its routes name neither evicts a live one nor reloads it on a player's request."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest

from reconciler.child_process import free_port
from reconciler.gateway.catalog import ProviderSettings, UseCaseCatalog, UseCaseProfile
from reconciler.gateway.composition import build_gateway
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.server import GatewayServer
from reconciler.gateway.targets import Target
from reconciler.observe.state import Route
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore, Writer
from tests.gateway.processes import World

USE_CASE = "pinned-chat"


def _ask(server: GatewayServer) -> httpx.Response:
    body = {"model": USE_CASE, "messages": [{"role": "user", "content": "hello"}]}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_live_targets_are_pinned_beyond_the_cache_bound(
    tmp_path: Path, world: World, echo_provider_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = UseCaseCatalog.of(
        [
            UseCaseProfile(
                name=USE_CASE,
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
        route_poll_seconds=0.1,
        max_loaded_models=1,
    )
    store = TrafficStore(StateDatabase(config.database))
    # Two live versions and a shadow: three targets for a cache bounded to one.
    store.write(
        USE_CASE,
        [Route("1", 50), Route("2", 50), Route("3", 100, shadow=True)],
        writer=Writer.RECONCILER,
    )
    caplog.set_level(logging.WARNING, logger="reconciler.gateway")
    with GatewayServer(build_gateway(config, catalog=catalog)) as server:
        cache = server.gateway.cache
        served = {_ask(server).headers["x-model-version"] for _ in range(20)}
        assert served == {"1", "2"}
        # Loaded once each while warming; no request had to load one again.
        assert cache.loads == 3 and cache.evictions == 0
        assert set(cache.loaded) == {Target(USE_CASE, v) for v in ("1", "2", "3")}
        healthz = httpx.get(f"{server.url}/healthz", timeout=10).json()
        assert len(healthz["loaded_models"]) == 3
        assert "more than the bound of 1" in caplog.text

        # The canary is promoted: what the old routes named is unpinned and may go now.
        store.write(USE_CASE, [Route("2", 100)], writer=Writer.RECONCILER)
        deadline = time.monotonic() + 10
        while cache.loaded != (Target(USE_CASE, "2"),):
            assert time.monotonic() < deadline, cache.loaded
            time.sleep(0.05)
        assert _ask(server).headers["x-model-version"] == "2"
        assert cache.loads == 3
