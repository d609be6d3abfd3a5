"""Admin writes and what the gateway exposes: a route write never empties a use case by
accident, bodies are bounded, clients cannot grow /metrics, and state files are private."""

from __future__ import annotations

import stat
from collections.abc import Iterator

import httpx

from tests.gateway.processes import RunningGateway

STORY_CHAT = {"model": "story", "messages": [{"role": "user", "content": "Once upon"}]}


def test_a_put_must_leave_the_use_case_served_and_delete_is_explicit(
    hostile_gateway: RunningGateway,
) -> None:
    url = hostile_gateway.url
    generation = hostile_gateway.set_routes("story", [{"version": "1", "weight": 100}])
    for routes in (
        [],
        [{"version": "1", "weight": 50}],
        [{"version": "1", "weight": 100, "shadow": True}],
    ):
        refused = httpx.put(
            f"{url}/admin/routes/story", json=routes, headers=hostile_gateway.admin(), timeout=30
        )
        assert refused.status_code == 400, routes
        error = refused.json()["error"]
        assert error["code"] == "weights_not_100"
        assert "DELETE /admin/routes/story" in error["message"]
    view = httpx.get(f"{url}/admin/routes/story", timeout=30).json()
    assert view["serving_generation"] == generation  # nothing was written
    assert httpx.post(f"{url}/v1/chat/completions", json=STORY_CHAT, timeout=30).status_code == 200

    assert httpx.delete(f"{url}/admin/routes/story", timeout=30).status_code == 401
    removed = httpx.delete(
        f"{url}/admin/routes/story",
        params={"wait": "true"},
        headers=hostile_gateway.admin(),
        timeout=60,
    )
    assert removed.status_code == 200, removed.text
    assert removed.json()["routes"] == []
    outage = httpx.post(f"{url}/v1/chat/completions", json=STORY_CHAT, timeout=30)
    assert outage.status_code == 503
    assert outage.json()["error"]["code"] == "no_routes"
    assert f"generation {removed.json()['written_generation']}" in outage.text
    hostile_gateway.set_routes("story", [{"version": "1", "weight": 100}])
    assert httpx.post(f"{url}/v1/chat/completions", json=STORY_CHAT, timeout=30).status_code == 200


def _chunks(total: int) -> Iterator[bytes]:
    chunk = b" " * 65_536
    for _ in range(total // len(chunk)):
        yield chunk


def test_admin_bodies_are_bounded_declared_or_not(hostile_gateway: RunningGateway) -> None:
    url = f"{hostile_gateway.url}/admin/routes/story"
    big = b"[" + b" " * 5_000_000 + b"]"
    declared = httpx.put(url, content=big, headers=hostile_gateway.admin(), timeout=60)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "body_too_large"
    # Chunked: no Content-Length to refuse up front; read only until past the limit.
    streamed = httpx.put(
        url, content=_chunks(5_000_000), headers=hostile_gateway.admin(), timeout=60
    )
    assert streamed.status_code == 413


def test_unknown_model_names_never_become_metric_labels(hostile_gateway: RunningGateway) -> None:
    names = [f"invented-model-{i}" for i in range(60)]
    for name in names:
        response = httpx.post(
            f"{hostile_gateway.url}/v1/chat/completions",
            json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert response.status_code == 404
    metrics = httpx.get(f"{hostile_gateway.url}/metrics", timeout=30).text
    assert "invented-model" not in metrics
    rejected = next(
        line
        for line in metrics.splitlines()
        if line.startswith('gateway_rejected_requests_total{use_case="",status="404"')
    )
    assert int(rejected.rsplit(" ", 1)[1]) >= len(names)


def test_state_files_are_private(hostile_gateway: RunningGateway) -> None:
    httpx.get(f"{hostile_gateway.url}/admin/usage", timeout=30)  # the log is written
    state = hostile_gateway.world.state_dir
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    databases = [p for p in state.iterdir() if p.name.startswith("state.db")]
    assert {p.name for p in databases} >= {"state.db"}
    for path in databases:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
