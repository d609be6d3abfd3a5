"""The request log on both backends: batched writes, feedback ordering, retention, and its
read-outs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.gateway.log_queries import (
    read_exchanges,
    usage_by_version,
    window_metrics,
)
from reconciler.gateway.request_log import (
    Feedback,
    FeedbackTargetError,
    LoggedRequest,
    RequestLog,
    RequestStatus,
)
from reconciler.state_store.database import StateDatabase

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def record(id: str, version: str = "1", ts: float = NOW, **fields: object) -> LoggedRequest:
    values: dict[str, object] = {
        "id": id,
        "ts": ts,
        "use_case": "npc",
        "model_version": version,
        "endpoint": "chat",
        "request": {"messages": [{"role": "user", "content": "hi"}]},
        "status": RequestStatus.OK,
        "latency_ms": 10.0,
        "guardrail": "pass",
        "route_generation": 1,
        "output": f"answer {id}",
    }
    values.update(fields)
    return LoggedRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
def request_log(state_database: StateDatabase) -> Iterator[RequestLog]:
    log = RequestLog(state_database, retention_days=7, clock=Clock())
    log.start()
    yield log
    log.stop()


def test_feedback_right_after_the_response_finds_its_row(request_log: RequestLog) -> None:
    request_log.append(record("r1"))
    assert request_log.record_feedback(Feedback("r1", rating=0.8)).result(5) == 1
    assert request_log.record_feedback(Feedback("r1", corrected_output="Better.")).result(5)
    assert request_log.record_feedback(Feedback("missing", rating=1.0)).result(5) == 0
    [exchange] = read_exchanges(request_log.database, "npc", since=0)
    assert exchange.rating == 0.8 and exchange.best_output == "Better."


def test_feedback_on_a_multi_prompt_response_reaches_its_choices(
    request_log: RequestLog,
) -> None:
    for index in range(3):
        request_log.append(record(f"gw-multi:{index}"))
    request_log.append(record("gw-multiple"))  # shares a prefix, not the response
    request_log.append(record("gw-multi-shadow:0", shadow=True))

    def feedback(
        *,
        rating: float | None = None,
        corrected_output: str | None = None,
        index: int | None = None,
    ) -> int:
        stored = request_log.record_feedback(Feedback("gw-multi", rating, corrected_output, index))
        return int(stored.result(5))

    assert feedback(rating=0.9) == 3  # a rating of the response rates every choice
    assert feedback(index=1, corrected_output="The second, corrected.") == 1
    with pytest.raises(FeedbackTargetError, match="give `index`"):
        feedback(corrected_output="Which one?")
    with pytest.raises(FeedbackTargetError, match="no choice with index 7"):
        feedback(index=7, rating=0.1)
    assert request_log.record_feedback(Feedback("gw-multi:2", rating=0.2)).result(5) == 1
    exchanges = {e.id: e for e in read_exchanges(request_log.database, "npc", since=0)}
    assert exchanges["gw-multi:0"].rating == 0.9
    assert exchanges["gw-multi:1"].best_output == "The second, corrected."
    assert exchanges["gw-multi:2"].rating == 0.2
    assert exchanges["gw-multiple"].rating is None
    # A single-output response is its own choice 0.
    request_log.append(record("gw-single"))
    assert request_log.record_feedback(Feedback("gw-single", rating=1.0, index=0)).result(5) == 1


def test_a_window_reports_each_version_separately(request_log: RequestLog) -> None:
    for i in range(19):
        request_log.append(record(f"a{i}", "1", latency_ms=float(i + 1)))
    request_log.append(
        record(
            "a-err",
            "1",
            status=RequestStatus.ERROR,
            output=None,
            guardrail="none",
            latency_ms=100.0,
        )
    )
    request_log.append(record("b1", "2", guardrail="block", violations=("harm",)))
    request_log.append(record("b2", "2", violations=("grim-tone",)))
    request_log.append(record("b3", "2"))
    request_log.append(record("old", "2", ts=NOW - 3600))
    request_log.append(record("s1", "3", shadow=True, mirror_of="b3"))
    request_log.flush()

    windows = window_metrics(request_log.database, "npc", since=NOW - 60)
    assert set(windows) == {"1", "2"}
    first, second = windows["1"], windows["2"]
    assert (first.requests, first.errors, first.error_rate) == (20, 1, 0.05)
    assert first.p50_latency_ms == 10.0 and first.p95_latency_ms == 19.0
    assert second.requests == 3 and second.guardrail_violations == 2
    assert second.guardrail_violation_rate == pytest.approx(2 / 3)
    shadow = window_metrics(request_log.database, "npc", since=NOW - 60, shadow=True)
    assert set(shadow) == {"3"} and shadow["3"].shadow
    assert window_metrics(request_log.database, "other", since=0) == {}

    usage = {(u.version, u.shadow): u for u in usage_by_version(request_log.database, "npc")}
    assert usage[("1", False)].success_rate == pytest.approx(19 / 20)
    assert usage[("2", False)].requests == 4 and usage[("2", False)].last_used == NOW
    # Blocked, failed and shadow rows never become training data.
    ids = {e.id for e in read_exchanges(request_log.database, "npc", since=0)}
    assert "a-err" not in ids and "b1" not in ids and "s1" not in ids and "b2" in ids


def test_rows_past_the_retention_are_deleted(state_database: StateDatabase) -> None:
    clock = Clock()
    log = RequestLog(state_database, retention_days=7, clock=clock)
    log.start()
    try:
        log.append(record("ancient", ts=NOW - 8 * 86_400))
        log.append(record("recent", ts=NOW - 6 * 86_400))
        log.flush()
        log.record_feedback(Feedback("ancient", rating=1.0)).result(5)
        clock.now += 7200  # the next batch is past the hourly retention check
        log.append(record("new", ts=clock.now))
        log.flush()
    finally:
        log.stop()
    ids = {e.id for e in read_exchanges(state_database, "npc", since=0)}
    assert ids == {"recent", "new"}
