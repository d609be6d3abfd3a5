"""Reading the request log: canary-analysis windows, usage per version, training examples.

These are plain functions over the state store so the apply engine, training and the admin
API share one definition of "error rate" or "p95 latency", and none of them needs a gateway
process to be running. On a shared store a window counts what every gateway replica served.
Shadow traffic is reported apart from live traffic: it never
reached a player, so it must not be mistaken for a canary's live behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from reconciler.gateway.request_log import RequestStatus
from reconciler.percentiles import percentile
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase

_log = schema.requests

# Failures of the version itself: its backend raised or timed out (`upstream_error`), it
# could not be loaded or reached (`target_unavailable`), or it produced no answer
# (`no_output`). Anything else that fails a request after routing (the output guard being
# down) is the gateway's, and a client's mistake is a 4xx that is never logged as an error;
# neither says anything about the version. Rows of schema 1 carry no code and count.
VERSION_FAILURE_CODES = frozenset({"upstream_error", "target_unavailable", "no_output"})


@dataclass(frozen=True)
class VersionWindow:
    """What one version did in a time window: the inputs of canary analysis."""

    version: str
    requests: int
    errors: int
    guardrail_violations: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    shadow: bool = False

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def guardrail_violation_rate(self) -> float | None:
        return self.guardrail_violations / self.requests if self.requests else None

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "shadow": self.shadow,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_latency_ms": self.p50_latency_ms,
            "p95_latency_ms": self.p95_latency_ms,
            "guardrail_violations": self.guardrail_violations,
            "guardrail_violation_rate": self.guardrail_violation_rate,
        }


def window_metrics(
    database: StateDatabase,
    use_case: str,
    *,
    since: float,
    until: float | None = None,
    shadow: bool = False,
) -> Mapping[str, VersionWindow]:
    """Per version of `use_case`: requests, errors, latency percentiles, guardrail violations
    for requests logged in [since, until). Live traffic by default; `shadow=True` for copies.
    A version with no requests in the window is absent: no data, never a pass. Errors are
    failures of the version itself only (`VERSION_FAILURE_CODES`)."""
    if not database.exists():
        return MappingProxyType({})
    query = select(
        _log.c.model_version,
        _log.c.status,
        _log.c.error_code,
        _log.c.latency_ms,
        _log.c.guardrail,
        _log.c.violations,
    ).where(_log.c.use_case == use_case, _log.c.shadow.is_(shadow), _log.c.ts >= since)
    if until is not None:
        query = query.where(_log.c.ts < until)
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    violations: dict[str, int] = {}
    for version, status, code, latency, guardrail, violation_json in database.read(
        lambda db: db.execute(query).all()
    ):
        latencies.setdefault(version, []).append(float(latency))
        failed = status == RequestStatus.ERROR and (code is None or code in VERSION_FAILURE_CODES)
        errors[version] = errors.get(version, 0) + failed
        violated = guardrail not in ("pass", "none") or violation_json not in ("[]", None)
        violations[version] = violations.get(version, 0) + violated
    windows = {}
    for version, values in sorted(latencies.items()):
        windows[version] = VersionWindow(
            version=version,
            requests=len(values),
            errors=errors[version],
            guardrail_violations=violations[version],
            p50_latency_ms=percentile(values, 0.50),
            p95_latency_ms=percentile(values, 0.95),
            shadow=shadow,
        )
    return MappingProxyType(windows)


@dataclass(frozen=True)
class VersionUsage:
    use_case: str
    version: str
    shadow: bool
    requests: int
    successes: int
    average_latency_ms: float
    last_used: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.requests if self.requests else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "version": self.version,
            "shadow": self.shadow,
            "requests": self.requests,
            "success_rate": self.success_rate,
            "average_latency_ms": self.average_latency_ms,
            "last_used": self.last_used,
        }


def usage_by_version(database: StateDatabase, use_case: str | None = None) -> list[VersionUsage]:
    """Count, success rate, mean latency and last use of every version in the retained log."""
    if not database.exists():
        return []
    query = select(
        _log.c.use_case,
        _log.c.model_version,
        _log.c.shadow,
        func.count(),
        func.sum(case((_log.c.status == RequestStatus.OK.value, 1), else_=0)),
        func.avg(_log.c.latency_ms),
        func.max(_log.c.ts),
    )
    if use_case is not None:
        query = query.where(_log.c.use_case == use_case)
    query = query.group_by(_log.c.use_case, _log.c.model_version, _log.c.shadow).order_by(
        _log.c.use_case, _log.c.model_version, _log.c.shadow
    )
    rows = database.read(lambda db: db.execute(query).all())
    return [
        VersionUsage(str(u), str(v), bool(s), int(n), int(ok or 0), float(avg), float(last))
        for u, v, s, n, ok, avg, last in rows
    ]


@dataclass(frozen=True)
class ExchangeRow:
    """One served exchange as training and evaluation read it."""

    id: str
    ts: float
    use_case: str
    model_version: str
    request: Mapping[str, Any]
    output: str
    rating: float | None
    corrected_output: str | None

    @property
    def best_output(self) -> str:
        """What the model should have said: the human correction when there is one."""
        return self.corrected_output if self.corrected_output is not None else self.output


def read_exchanges(
    database: StateDatabase,
    use_case: str,
    *,
    since: float,
    min_rating: float | None = None,
    limit: int | None = None,
    without_violations: bool = False,
) -> Iterator[ExchangeRow]:
    """Successful live exchanges that passed the guardrails, newest first.

    With `min_rating`, only rated exchanges at or above it, or ones a person corrected (a
    correction is a rating of its own). Blocked, replaced, failed and shadow responses are
    never training data. A `log_only` intervention lets an output through with guardrail
    'pass' but records what it violated; `without_violations` leaves those out too, as
    training must (a flagged output is not an example to learn from).
    """
    if not database.exists():
        return
    rated = schema.feedback
    query = (
        select(
            _log.c.id,
            _log.c.ts,
            _log.c.use_case,
            _log.c.model_version,
            _log.c.request_json,
            _log.c.output,
            rated.c.rating,
            rated.c.corrected_output,
        )
        .select_from(_log.outerjoin(rated, rated.c.response_id == _log.c.id))
        .where(
            _log.c.use_case == use_case,
            _log.c.ts >= since,
            _log.c.shadow.is_(False),
            _log.c.status == RequestStatus.OK.value,
            _log.c.guardrail == "pass",
        )
    )
    if without_violations:
        # The column is NOT NULL; the writer stores "no violations" as the JSON '[]'.
        query = query.where(_log.c.violations == "[]")
    if min_rating is not None:
        query = query.where((rated.c.rating >= min_rating) | rated.c.corrected_output.isnot(None))
    query = query.order_by(_log.c.ts.desc())
    if limit is not None:
        query = query.limit(limit)
    for row in database.read(lambda db: db.execute(query).all()):
        yield ExchangeRow(
            id=row[0],
            ts=row[1],
            use_case=row[2],
            model_version=row[3],
            request=MappingProxyType(json.loads(row[4])),
            output=row[5] or "",
            rating=row[6],
            corrected_output=row[7],
        )


@dataclass(frozen=True)
class RecordedOutput:
    """One answer a live version gave, as the guardrail monitor reads it."""

    version: str
    text: str
    ts: float
    id: str = ""
    violations: tuple[str, ...] = ()  # the inline guard's labels, when it found any


def served_outputs(
    database: StateDatabase, use_case: str, *, since: float, limit: int = 5_000
) -> list[RecordedOutput]:
    """The newest successful live outputs of `use_case` since `since` (shadows excluded)."""
    if not database.exists():
        return []
    query = (
        select(_log.c.model_version, _log.c.output, _log.c.ts, _log.c.id, _log.c.violations)
        .where(
            _log.c.use_case == use_case,
            _log.c.shadow.is_(False),
            _log.c.status == RequestStatus.OK.value,
            _log.c.ts >= since,
            _log.c.output.isnot(None),
        )
        .order_by(_log.c.ts.desc())
        .limit(limit)
    )
    rows = database.read(lambda db: db.execute(query).all())
    return [
        RecordedOutput(str(v), str(text), float(ts), str(row_id), _labels(violations))
        for v, text, ts, row_id, violations in rows
    ]


def _labels(stored: str | None) -> tuple[str, ...]:
    try:
        labels = json.loads(stored) if stored else []
    except ValueError:
        return ()
    return tuple(str(label) for label in labels) if isinstance(labels, list) else ()


def mirrored_pairs(
    database: StateDatabase,
    use_case: str,
    *,
    version: str,
    against: str,
    since: float,
    until: float,
    limit: int = 500,
) -> list[tuple[str, str]]:
    """(mirrored answer of `version`, live answer of `against`) to the same player requests in
    [since, until): what a shadow analysis compares. Only successful answers of both."""
    if not database.exists():
        return []
    mirrored, live = aliased(_log), aliased(_log)
    ok = RequestStatus.OK.value
    query = (
        select(mirrored.c.output, live.c.output)
        .join(live, live.c.id == mirrored.c.mirror_of)
        .where(
            mirrored.c.use_case == use_case,
            mirrored.c.shadow.is_(True),
            mirrored.c.model_version == version,
            live.c.model_version == against,
            live.c.shadow.is_(False),
            mirrored.c.status == ok,
            live.c.status == ok,
            mirrored.c.ts >= since,
            mirrored.c.ts < until,
            mirrored.c.output.isnot(None),
            live.c.output.isnot(None),
        )
        .order_by(mirrored.c.ts.desc())
        .limit(limit)
    )
    rows = database.read(lambda db: db.execute(query).all())
    return [(str(answer), str(champion)) for answer, champion in rows]
