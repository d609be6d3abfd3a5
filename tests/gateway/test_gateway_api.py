"""The OpenAI-compatible API of the running gateway: the official client, errors, feedback,
admin auth, upstream failures, metrics and usage."""

from __future__ import annotations

import sqlite3
import time

import httpx
import openai
import pytest

from reconciler.gateway.log_queries import read_exchanges
from tests.gateway.processes import ADMIN_TOKEN, RunningGateway

CHAT = {"model": "echo-chat", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def echo_routes(gateway: RunningGateway) -> RunningGateway:
    gateway.set_routes("echo-chat", [{"version": "1", "weight": 100}])
    return gateway


def _client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-checked", max_retries=0)


def test_the_official_openai_client_works_unchanged(echo_routes: RunningGateway) -> None:
    client = _client(echo_routes)
    raw = client.chat.completions.with_raw_response.create(
        model="echo-chat", messages=[{"role": "user", "content": "Where is the inn?"}]
    )
    completion = raw.parse()
    assert raw.headers["x-model-version"] == "1"
    assert completion.model == "echo-chat"
    assert completion.model_extra is not None and completion.model_extra["model_version"] == "1"
    assert completion.choices[0].message.content == "echo[echo-large]: Where is the inn?"
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    text = client.completions.create(model="echo-chat", prompt="Once upon a time")
    assert text.choices[0].text == "echo[echo-large]: Once upon a time"

    chunks = list(
        client.chat.completions.create(
            model="echo-chat", messages=[{"role": "user", "content": "stream me"}], stream=True
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == "echo[echo-large]: stream me"
    assert chunks[-1].choices[0].finish_reason == "stop"

    assert {"echo-chat", "tiny-npc"} <= {m.id for m in client.models.list()}


def test_the_use_case_system_prompt_and_caps_are_applied(echo_routes: RunningGateway) -> None:
    since = time.time()
    response = httpx.post(
        f"{echo_routes.url}/v1/chat/completions",
        json={**CHAT, "max_tokens": 1000, "temperature": 0.1},
        timeout=30,
    )
    assert response.status_code == 200
    httpx.get(f"{echo_routes.url}/admin/usage", timeout=30)  # flushes the log
    [exchange] = [
        e
        for e in read_exchanges(echo_routes.world.database, "echo-chat", since=since)
        if e.id == response.json()["id"]
    ]
    assert exchange.request["messages"][0] == {"role": "system", "content": "You are an echo."}
    assert exchange.request["max_new_tokens"] == 64  # the use case's maxNewTokens caps it
    assert exchange.request["temperature"] == 0.1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_request_error"),
        (
            b'{"model": "no-such-use-case", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
        ),
        (b'{"model": "echo-chat"}', 400, "invalid_request_error"),
        (b'{"model": "echo-chat", "messages": [], "temperature": 1}', 400, "invalid_request_error"),
        (
            b'{"model": "echo-chat", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": 7}',
            400,
            "invalid_request_error",
        ),
        (
            b'{"model": "echo-chat", "messages": [{"role": "user", "content": "x"}], "n": 3}',
            400,
            "invalid_request_error",
        ),
        (
            b'{"model": "echo-chat", "messages": [{"role": "user", "content": "x"}], '
            b'"max_tokens": 100000}',
            400,
            "invalid_request_error",
        ),
        (
            b'{"model": "echo-chat", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "invalid_request_error",
        ),
        (b"[1, 2]", 400, "invalid_request_error"),
        # Nesting deeper than the JSON parser recurses: a client mistake, never a 500.
        (b"[" * 100_000, 400, "invalid_request_error"),
        (b'{"model": "echo-chat", "messages": ' + b'{"a": ' * 50_000, 400, "invalid_request_error"),
    ],
)
def test_bad_requests_get_openai_style_4xx(
    echo_routes: RunningGateway, body: bytes, status: int, code: str
) -> None:
    response = httpx.post(
        f"{echo_routes.url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code or error["type"] == code
    assert error["message"]


def test_oversized_prompts_and_bodies_are_refused(echo_routes: RunningGateway) -> None:
    long_prompt = {"model": "echo-chat", "messages": [{"role": "user", "content": "x" * 40_000}]}
    response = httpx.post(f"{echo_routes.url}/v1/chat/completions", json=long_prompt, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    huge = {"model": "echo-chat", "messages": [{"role": "user", "content": "x" * 1_200_000}]}
    response = httpx.post(f"{echo_routes.url}/v1/chat/completions", json=huge, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_unknown_paths_and_methods_answer_json(echo_routes: RunningGateway) -> None:
    missing = httpx.get(f"{echo_routes.url}/v1/nothing-here", timeout=30)
    assert missing.status_code == 404 and "error" in missing.json()
    wrong_method = httpx.get(f"{echo_routes.url}/v1/chat/completions", timeout=30)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_the_openai_client_raises_its_own_error_types(echo_routes: RunningGateway) -> None:
    client = _client(echo_routes)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="echo-chat", messages=[{"role": "user", "content": "x"}], top_p=3
        )


def test_an_upstream_failure_is_a_502_counted_against_the_version(
    echo_routes: RunningGateway,
) -> None:
    since = time.time()
    bad = {"model": "echo-chat", "messages": [{"role": "user", "content": "provider-fail now"}]}
    response = httpx.post(f"{echo_routes.url}/v1/chat/completions", json=bad, timeout=30)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    # Summarised (status and the provider's error code), never the provider's own words.
    assert "HTTP 500" in error["message"] and "(server_error)" in error["message"]
    assert "failing on purpose" not in error["message"]
    httpx.post(f"{echo_routes.url}/v1/chat/completions", json=CHAT, timeout=30)

    window = httpx.get(
        f"{echo_routes.url}/admin/metrics",
        params={"use_case": "echo-chat", "since": since},
        timeout=30,
    ).json()
    version = window["versions"]["1"]
    assert version["requests"] == 2 and version["errors"] == 1
    assert version["error_rate"] == pytest.approx(0.5)
    assert version["p50_latency_ms"] is not None

    metrics = httpx.get(f"{echo_routes.url}/metrics", timeout=30).text
    assert (
        'gateway_request_errors_total{use_case="echo-chat",version="1",shadow="false",'
        'kind="upstream_error"}' in metrics
    )
    assert "gateway_request_latency_seconds_bucket{" in metrics
    assert 'gateway_rejected_requests_total{use_case="' in metrics


def test_feedback_is_stored_against_the_logged_response(echo_routes: RunningGateway) -> None:
    since = time.time()
    first = httpx.post(f"{echo_routes.url}/v1/chat/completions", json=CHAT, timeout=30).json()
    second = httpx.post(f"{echo_routes.url}/v1/chat/completions", json=CHAT, timeout=30).json()
    stored = httpx.post(
        f"{echo_routes.url}/v1/feedback",
        json={"id": second["id"], "rating": 0.9, "corrected_output": "Greetings, traveller."},
        timeout=30,
    )
    assert stored.status_code == 200, stored.text
    unknown = httpx.post(
        f"{echo_routes.url}/v1/feedback", json={"id": "gw-nope", "rating": 0.5}, timeout=30
    )
    assert unknown.status_code == 404
    out_of_range = httpx.post(
        f"{echo_routes.url}/v1/feedback", json={"id": first["id"], "rating": 1.5}, timeout=30
    )
    assert out_of_range.status_code == 400

    with sqlite3.connect(echo_routes.world.state_db) as db:
        rows = db.execute("SELECT response_id, rating, corrected_output FROM feedback").fetchall()
    assert (second["id"], 0.9, "Greetings, traveller.") in rows
    assert all(row[0] != first["id"] for row in rows)

    rated = list(
        read_exchanges(echo_routes.world.database, "echo-chat", since=since, min_rating=0.8)
    )
    assert [e.id for e in rated] == [second["id"]]
    assert rated[0].best_output == "Greetings, traveller."


def test_feedback_reaches_the_choices_of_a_multi_prompt_completion(
    echo_routes: RunningGateway,
) -> None:
    since = time.time()
    completion = _client(echo_routes).completions.create(
        model="echo-chat", prompt=["The inn", "The well"]
    )
    assert [c.index for c in completion.choices] == [0, 1]
    url = f"{echo_routes.url}/v1/feedback"
    rated = httpx.post(url, json={"id": completion.id, "rating": 0.75}, timeout=30)
    assert rated.status_code == 200, rated.text
    assert rated.json()["outputs"] == 2
    corrected = httpx.post(
        url,
        json={"id": completion.id, "index": 1, "corrected_output": "By the well, a quest."},
        timeout=30,
    )
    assert corrected.status_code == 200, corrected.text
    which = httpx.post(url, json={"id": completion.id, "corrected_output": "?"}, timeout=30)
    assert which.status_code == 400 and "give `index`" in which.json()["error"]["message"]

    exchanges = {
        e.output: e
        for e in read_exchanges(echo_routes.world.database, "echo-chat", since=since)
        if e.id.startswith(f"{completion.id}:")
    }
    assert {e.rating for e in exchanges.values()} == {0.75}
    assert exchanges["echo[echo-large]: The well"].best_output == "By the well, a quest."
    assert exchanges["echo[echo-large]: The inn"].corrected_output is None


@pytest.mark.parametrize("since", ["nan", "inf", "-inf", "NaN", "soon"])
def test_an_analysis_window_needs_finite_bounds(echo_routes: RunningGateway, since: str) -> None:
    for params in ({"since": since}, {"since": "0", "until": since}):
        response = httpx.get(
            f"{echo_routes.url}/admin/metrics",
            params={"use_case": "echo-chat", **params},
            timeout=30,
        )
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["param"] in params


def test_admin_writes_need_the_token(echo_routes: RunningGateway) -> None:
    url = f"{echo_routes.url}/admin/routes/echo-chat"
    routes = [{"version": "2", "weight": 100}]
    missing = httpx.put(url, json=routes, timeout=30)
    assert missing.status_code == 401
    wrong = httpx.put(url, json=routes, headers={"Authorization": "Bearer guess"}, timeout=30)
    assert wrong.status_code == 401
    assert "guess" not in wrong.text and ADMIN_TOKEN not in wrong.text

    admin = echo_routes.admin()
    bad_sum = httpx.put(url, json=[{"version": "1", "weight": 90}], headers=admin, timeout=30)
    assert bad_sum.status_code == 400 and "sum to 100" in bad_sum.json()["error"]["message"]
    unknown_version = httpx.put(
        url, json=[{"version": "99", "weight": 100}], headers=admin, timeout=30
    )
    assert unknown_version.status_code == 400
    assert "does not exist" in unknown_version.json()["error"]["message"]
    not_a_list = httpx.put(url, content=b'{"version": "1"}', headers=admin, timeout=30)
    assert not_a_list.status_code == 400
    unknown_use_case = httpx.put(
        f"{echo_routes.url}/admin/routes/nope", json=routes, headers=admin, timeout=30
    )
    assert unknown_use_case.status_code == 404
    stale = httpx.put(
        url, params={"expected_generation": 0}, json=routes, headers=admin, timeout=30
    )
    assert stale.status_code == 409

    served = httpx.get(url, timeout=30).json()
    assert served["routes"] == [{"version": "1", "weight": 100, "shadow": False}]


def test_usage_reports_each_version(echo_routes: RunningGateway) -> None:
    httpx.post(f"{echo_routes.url}/v1/chat/completions", json=CHAT, timeout=30)
    usage = httpx.get(
        f"{echo_routes.url}/admin/usage", params={"use_case": "echo-chat"}, timeout=30
    ).json()
    live = {row["version"]: row for row in usage["versions"] if not row["shadow"]}
    assert live["1"]["requests"] >= 1
    assert 0 < live["1"]["success_rate"] <= 1
    assert live["1"]["average_latency_ms"] > 0
    assert live["1"]["last_used"] > time.time() - 60
