"""The gateway's "done when", end to end: the `reconciler gateway` command serving a tiny model
registered in MLflow (two versions), the official `openai` client reading the served version
from `x-model-version`, weights changed through the admin API with the bearer token, the
split following each change, and /metrics counting what was served."""

from __future__ import annotations

from collections import Counter

import httpx
import openai

from tests.gateway.processes import ADMIN_TOKEN, RunningGateway

USE_CASE = "tiny-npc"


def _samples(gateway: RunningGateway) -> dict[str, float]:
    """Every sample of /metrics, keyed by its name and labels as rendered."""
    text = httpx.get(f"{gateway.url}/metrics", timeout=30).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def _served(version: str, samples: dict[str, float]) -> float:
    labels = f'use_case="{USE_CASE}",version="{version}",shadow="false"'
    return samples.get(f"gateway_requests_total{{{labels}}}", 0.0)


def _put_routes(gateway: RunningGateway, routes: list[dict[str, object]], token: str) -> int:
    response = httpx.put(
        f"{gateway.url}/admin/routes/{USE_CASE}",
        params={"wait": "true"},
        json=routes,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["written_generation"])


def test_weights_changed_through_the_admin_api_steer_a_real_model(
    gateway: RunningGateway, tiny_versions: tuple[str, str]
) -> None:
    first, second = tiny_versions
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="any", max_retries=0)

    def split(requests: int) -> Counter[str]:
        served: Counter[str] = Counter()
        for i in range(requests):
            raw = client.chat.completions.with_raw_response.create(
                model=USE_CASE, messages=[{"role": "user", "content": f"Hello, guard {i}."}]
            )
            completion = raw.parse()
            assert isinstance(completion.choices[0].message.content, str)
            assert completion.model_extra is not None
            assert completion.model_extra["model_version"] == raw.headers["x-model-version"]
            served[raw.headers["x-model-version"]] += 1
        return served

    refused = httpx.put(
        f"{gateway.url}/admin/routes/{USE_CASE}",
        json=[{"version": second, "weight": 100}],
        headers={"Authorization": "Bearer not-the-token"},
        timeout=30,
    )
    assert refused.status_code == 401

    before = _samples(gateway)
    _put_routes(gateway, [{"version": first, "weight": 100}], ADMIN_TOKEN)
    assert split(6) == {first: 6}
    _put_routes(
        gateway,
        [{"version": first, "weight": 50}, {"version": second, "weight": 50}],
        ADMIN_TOKEN,
    )
    # Anonymous requests get each version's exact share over every run of 100 (of 2, here).
    assert split(10) == {first: 5, second: 5}
    generation = _put_routes(
        gateway,
        [{"version": first, "weight": 0}, {"version": second, "weight": 100}],
        ADMIN_TOKEN,
    )
    assert split(6) == {second: 6}

    after = _samples(gateway)
    assert _served(first, after) - _served(first, before) == 11
    assert _served(second, after) - _served(second, before) == 11
    assert after[f'gateway_route_generation{{use_case="{USE_CASE}"}}'] == generation
    assert after["gateway_loaded_models"] >= 2
