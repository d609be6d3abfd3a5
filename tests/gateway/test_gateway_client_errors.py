"""A client's mistakes are its own: 4xx answers that never count against a model version.

Canary analysis reads the request log's window metrics; if a player could turn a bad request
into an error of the canary, any player could fail a rollout. Here a canary takes half the
traffic while a hostile client sends every kind of bad request, and the analysis window of
both versions still shows no error at all."""

from __future__ import annotations

import time

import httpx

from reconciler.apply.request_log_metrics import RequestLogMetrics
from reconciler.gateway.log_queries import window_metrics
from reconciler.rollout.analysis import AnalysisOutcome, measure, thresholds_of
from reconciler.spec.model import AnalysisMetrics
from tests.gateway.processes import RunningGateway

# What the demo's rollouts allow: errorRate max 0.01.
MAX_ERROR_RATE = 0.01
GOOD = {"model": "echo-chat", "messages": [{"role": "user", "content": "Where is the inn?"}]}
CLIENT_MISTAKES: list[tuple[str, object]] = [
    ("/v1/completions", {"model": "echo-chat", "prompt": ""}),
    ("/v1/completions", {"model": "echo-chat", "prompt": ["fine", ""]}),
    ("/v1/completions", {"model": "echo-chat", "prompt": []}),
    ("/v1/completions", {"model": "echo-chat", "prompt": "x", "stream": True}),
    ("/v1/completions", {"model": "echo-chat", "prompt": "x" * 40_000}),
    ("/v1/chat/completions", {"model": "echo-chat", "messages": []}),
    ("/v1/chat/completions", {**GOOD, "max_tokens": 1_000_000}),
    ("/v1/chat/completions", {**GOOD, "temperature": 7}),
    ("/v1/chat/completions", {**GOOD, "n": 3}),
    ("/v1/chat/completions", {**GOOD, "stop": ["a"] * 9}),
    ("/v1/chat/completions", {**GOOD, "model": "no-such-use-case"}),
    ("/v1/chat/completions", {"model": "echo-chat", "messages": [{"role": "wizard"}]}),
]


def test_client_errors_during_a_canary_do_not_fail_it(gateway: RunningGateway) -> None:
    gateway.set_routes(
        "echo-chat", [{"version": "1", "weight": 50}, {"version": "2", "weight": 50}]
    )
    since = time.time()
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for _ in range(3):
            for path, body in CLIENT_MISTAKES:
                refused = client.post(path, json=body)
                assert 400 <= refused.status_code < 500, (path, body, refused.text)
            refused = client.post(
                "/v1/completions",
                content=b'{"model": "echo-chat", "prompt": "\\ud800"}',
                headers={"content-type": "application/json"},
            )
            assert refused.status_code == 400
            assert client.post("/v1/completions", content=b"{not json").status_code == 400
        served = [client.post("/v1/chat/completions", json=GOOD) for _ in range(20)]
        assert {r.status_code for r in served} == {200}
        client.get("/admin/usage")  # the log is flushed

    windows = window_metrics(gateway.world.database, "echo-chat", since=since)
    assert set(windows) == {"1", "2"}
    for version, window in windows.items():
        assert window.requests == 10, version  # only the requests that reached a model
        assert window.errors == 0 and window.error_rate == 0.0
    # And the canary's analysis, as the rollout makes it from the same log, passes.
    canary = RequestLogMetrics(gateway.world.database).window(
        "echo-chat", "2", since=since, until=time.time()
    )
    thresholds = thresholds_of(
        AnalysisMetrics.model_validate({"errorRate": {"max": MAX_ERROR_RATE}})
    )
    analysis = measure(canary, thresholds, min_requests=10)
    assert analysis.outcome is AnalysisOutcome.SUCCESSFUL, analysis.summary


def test_an_empty_prompt_is_a_400_for_a_self_hosted_canary_too(
    gateway: RunningGateway, tiny_versions: tuple[str, str]
) -> None:
    """The original fault: an empty prompt made transformers raise (502, IndexError), an
    error of whichever version the player was routed to."""
    logged, plain = tiny_versions
    gateway.set_routes(
        "tiny-npc", [{"version": logged, "weight": 50}, {"version": plain, "weight": 50}]
    )
    since = time.time()
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        for body in ({"prompt": ""}, {"prompt": ["The inn", ""]}) * 3:
            refused = client.post("/v1/completions", json={"model": "tiny-npc", **body})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "empty_prompt"
        for _ in range(4):
            answered = client.post("/v1/completions", json={"model": "tiny-npc", "prompt": "The"})
            assert answered.status_code == 200, answered.text
        client.get("/admin/usage")

    windows = window_metrics(gateway.world.database, "tiny-npc", since=since)
    assert sum(w.requests for w in windows.values()) == 4
    assert all(w.errors == 0 for w in windows.values())
