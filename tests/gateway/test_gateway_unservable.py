"""When routes exist but a version cannot be served, the gateway says which and why.

A player's 503 and `GET /admin/routes` (per target: ready, serving, the redacted error) name
the version and the cause — here an external model's API-key variable that is not set —
instead of claiming the use case has no routes."""

from __future__ import annotations

import httpx

from reconciler.traffic.remote import unservable_targets
from tests.gateway.processes import RunningGateway
from tests.gateway.test_gateway_secrets import until


def test_routes_that_cannot_be_served_name_the_version_and_the_cause(
    hostile_gateway: RunningGateway,
) -> None:
    url = hostile_gateway.url
    written = httpx.put(
        f"{url}/admin/routes/saga",
        json=[{"version": "1", "weight": 100}],
        headers=hostile_gateway.admin(),
        timeout=60,
    )
    assert written.status_code == 200, written.text

    def failed_targets() -> list[dict[str, object]]:
        view = httpx.get(f"{url}/admin/routes", timeout=30).json()
        [saga] = [u for u in view["use_cases"] if u["use_case"] == "saga"]
        return [t for t in saga["targets"] if t["error"]]

    [target] = until(failed_targets)
    assert target["version"] == "1" and target["ready"] is False and target["serving"] is False
    assert "SAGA_PROVIDER_KEY" in str(target["error"]) and "not set" in str(target["error"])

    answer = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "saga", "messages": [{"role": "user", "content": "A saga, please."}]},
        timeout=30,
    )
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "routes_not_ready"
    assert "version 1" in error["message"] and "SAGA_PROVIDER_KEY" in error["message"]
    assert "has no live routes" not in error["message"]
    assert "the reconciler shifts traffic on apply" not in error["message"]
    # What `reconciler status` reads when RECONCILER_GATEWAY_URL names this gateway.
    unservable = unservable_targets(url)
    (cause,) = unservable["saga"]
    assert cause.startswith("version 1 cannot be served:") and "SAGA_PROVIDER_KEY" in cause

    # A use case that is served reports its targets ready.
    hostile_gateway.set_routes("story", [{"version": "1", "weight": 100}])
    story = httpx.get(f"{url}/admin/routes/story", timeout=30).json()
    assert story["targets"] == [
        {"version": "1", "ready": True, "serving": True, "error": None, "last_failure": None}
    ]
