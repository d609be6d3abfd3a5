"""The gateway's OpenAPI document, fuzzed against a running gateway with schemathesis.

Every operation the document describes gets examples that fit it (positive) and examples
that break it (negative), sent over HTTP to a `reconciler gateway` process of its own whose
use case is served by the echo provider. Nothing may answer 5xx, and afterwards the request
log must still be healthy and logging. The admin writes are fuzzed with the admin token and
last, since a fuzzed DELETE legitimately takes the use case's traffic away (503s after it
are the truth, not a fault)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.gateway.conftest import ECHO_CHAT_YAML
from tests.gateway.processes import (
    ADMIN_TOKEN,
    PROVIDER_KEY,
    RunningGateway,
    World,
    gateway_process,
)

EXAMPLES_PER_OPERATION = 25
ADMIN_WRITES = {("PUT", "/admin/routes/{use_case}"), ("DELETE", "/admin/routes/{use_case}")}


@pytest.fixture(scope="module")
def fuzzed_gateway(
    world: World, echo_provider_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("fuzzed")
    repo = root / "repo"
    (repo / "desired_state" / "datasets").mkdir(parents=True)
    (repo / "desired_state" / "datasets" / "eval.jsonl").write_text('{"prompt": "hello"}\n')
    (repo / "desired_state" / "echo-chat.yaml").write_text(ECHO_CHAT_YAML)
    fuzzed = World(
        root=root,
        tracking_uri=world.tracking_uri,
        artifact_uri=world.artifact_uri,
        repo=repo,
        state_dir=root / "state",
    )
    env = {"ECHO_PROVIDER_URL": echo_provider_url, "ECHO_PROVIDER_KEY": PROVIDER_KEY}
    with gateway_process(
        repo=repo, tracking_uri=world.tracking_uri, state_dir=fuzzed.state_dir, cwd=root, env=env
    ) as url:
        running = RunningGateway(url=url, world=fuzzed)
        running.set_routes(
            "echo-chat", [{"version": "1", "weight": 80}, {"version": "2", "weight": 20}]
        )
        yield running


def _fuzz(operation: Any, base_url: str, mode: GenerationMode, **fixed: Any) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples every run: a failure reproduces
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            checks=[not_a_server_error],
            timeout=60,
        )

    check()


def _has_free_inputs(operation: Any, fixed: dict[str, Any]) -> bool:
    """Whether there is anything to break: an operation without inputs has no negative case."""
    path = len(operation.path_parameters) and "path_parameters" not in fixed
    return bool(len(operation.body) or len(operation.query) or path)


def test_no_input_the_openapi_document_allows_or_breaks_gets_a_5xx(
    fuzzed_gateway: RunningGateway, tmp_path: Path
) -> None:
    url = fuzzed_gateway.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    described = {(op.method.upper(), op.path) for op in operations}
    assert {
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/feedback"),
        ("GET", "/admin/metrics"),
        *ADMIN_WRITES,
    } <= described
    # Reads and serving first, the admin writes last (see the module docstring).
    ordered = sorted(operations, key=lambda op: (op.method.upper(), op.path) in ADMIN_WRITES)
    for operation in ordered:
        fixed = {}
        if "{use_case}" in operation.path:
            fixed["path_parameters"] = {"use_case": "echo-chat"}
        _fuzz(operation, url, GenerationMode.POSITIVE, **fixed)
        if _has_free_inputs(operation, fixed):
            _fuzz(operation, url, GenerationMode.NEGATIVE, **fixed)
        if fixed:  # and with invented use-case names (any string fits a path)
            _fuzz(operation, url, GenerationMode.POSITIVE)

    httpx.get(f"{url}/admin/usage", timeout=30)  # flushes the log: every served request written
    health = httpx.get(f"{url}/healthz", timeout=30)
    assert health.status_code == 200, health.text
    log = health.json()["request_log"]
    assert log["healthy"] and log["failed"] == 0 and log["dropped"] == 0
    assert log["written"] > 0  # the fuzzed requests that were served were logged
    fuzzed_gateway.set_routes("echo-chat", [{"version": "1", "weight": 100}])
    served = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "echo-chat", "messages": [{"role": "user", "content": "after the fuzz"}]},
        timeout=30,
    )
    assert served.status_code == 200
    httpx.get(f"{url}/admin/usage", timeout=30)
    after = httpx.get(f"{url}/healthz", timeout=30).json()["request_log"]
    assert after["written"] == log["written"] + 1
