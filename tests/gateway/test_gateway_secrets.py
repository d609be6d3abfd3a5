"""Secrets stay secret: credentials in a provider URL and keys a provider echoes back appear
in no answer, admin view, request-log row or log line of the gateway, and are never sent."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.conftest import HOSTILE_KEY, URL_PASSWORD
from tests.gateway.processes import RunningGateway


def until(condition: Callable[[], Any], *, timeout: float = 60.0) -> Any:
    """Poll `condition` until it returns something truthy (a deadline, not a guess)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout:g}s")


def _gateway_logs(gateway: RunningGateway) -> str:
    return "".join(p.read_text(errors="replace") for p in gateway.world.root.glob("gateway-*.log"))


def _request_log_text(path: Path) -> str:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM requests").fetchall()
    return "\n".join(repr(row) for row in rows)


def test_credentials_in_a_provider_url_are_refused_and_never_shown(
    hostile_gateway: RunningGateway, echo_provider_url: str
) -> None:
    url = hostile_gateway.url
    written = httpx.put(
        f"{url}/admin/routes/tale",
        json=[{"version": "1", "weight": 100}],
        headers=hostile_gateway.admin(),
        timeout=60,
    )
    assert written.status_code == 200, written.text

    def pending_target() -> dict[str, Any] | None:
        view = httpx.get(f"{url}/admin/routes/tale", timeout=30).json()
        failed = [t for t in view["targets"] if t["error"]]
        return failed[0] if failed else None

    target = until(pending_target)
    assert target["version"] == "1" and target["ready"] is False
    # The cause is named (which variable, what is wrong in it), the password is not.
    assert "TALE_PROVIDER_URL" in target["error"] and "user:password@" in target["error"]
    assert "http://***@127.0.0.1" in target["error"]

    answer = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "tale", "messages": [{"role": "user", "content": "Tell me a tale."}]},
        timeout=30,
    )
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "routes_not_ready"
    assert "TALE_PROVIDER_URL" in answer.text

    everything = (
        answer.text
        + httpx.get(f"{url}/admin/routes", timeout=30).text
        + httpx.get(f"{url}/healthz", timeout=30).text
        + _gateway_logs(hostile_gateway)
    )
    assert URL_PASSWORD not in everything and "player:" not in everything
    # Refused before any request went out: the provider never saw Basic credentials.
    stats = httpx.get(f"{echo_provider_url.removesuffix('/v1')}/stats", timeout=30).json()
    assert "authorization_basic" not in stats


def test_a_provider_error_is_summarised_never_echoed(
    hostile_gateway: RunningGateway,
) -> None:
    url = hostile_gateway.url
    # Version 2 of `story` is served by a provider that echoes the Authorization header in
    # its error bodies.
    hostile_gateway.set_routes("story", [{"version": "2", "weight": 100}])
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "story", "messages": [{"role": "user", "content": "Once upon"}]},
        timeout=30,
    )
    text = httpx.post(
        f"{url}/v1/completions", json={"model": "story", "prompt": "Once upon"}, timeout=30
    )
    for failed in (chat, text):
        assert failed.status_code == 502
        error = failed.json()["error"]
        assert error["code"] == "upstream_error"
        # What failed (status, the provider's error code), not what the provider said.
        assert "HTTP 401 Unauthorized (invalid_api_key)" in error["message"]
        assert HOSTILE_KEY not in failed.text and "Bearer" not in failed.text

    # The version's latest failure is shown per target, summarised like the answer.
    [target] = httpx.get(f"{url}/admin/routes/story", timeout=30).json()["targets"]
    assert target["version"] == "2" and target["ready"] is True
    assert "HTTP 401 Unauthorized (invalid_api_key)" in target["last_failure"]["message"]
    assert HOSTILE_KEY not in str(target)

    httpx.get(f"{url}/admin/usage", timeout=30)  # flushes the request log
    stored = _request_log_text(hostile_gateway.world.state_db)
    assert "HTTP 401" in stored and "upstream_error" in stored
    assert HOSTILE_KEY not in stored and "Bearer" not in stored
    assert HOSTILE_KEY not in _gateway_logs(hostile_gateway)
    # The sent key was the bearer token from the environment, as always.
    hostile_gateway.set_routes("story", [{"version": "1", "weight": 100}])
    served = httpx.post(
        f"{url}/v1/completions", json={"model": "story", "prompt": "Once upon"}, timeout=30
    )
    assert served.status_code == 200, served.text
