"""Reading the request log: canary-analysis windows, usage per version, training examples.

These are plain functions over the SQLite file so the apply engine, training and the admin
API share one definition of "error rate" or "p95 latency", and none of them needs the
gateway process to be running. Shadow traffic is reported apart from live traffic: it never
reached a player, so it must not be mistaken for a canary's live behaviour.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.gateway.request_log import RequestStatus, connect
from reconciler.percentiles import percentile

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
    log_path: Path,
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
    if not log_path.exists():
        return MappingProxyType({})
    query = (
        "SELECT model_version, status, error_code, latency_ms, guardrail, violations "
        "FROM requests WHERE use_case = ? AND shadow = ? AND ts >= ?"
    )
    params: list[Any] = [use_case, int(shadow), since]
    if until is not None:
        query += " AND ts < ?"
        params.append(until)
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    violations: dict[str, int] = {}
    with connect(log_path) as db:
        for version, status, code, latency, guardrail, violation_json in db.execute(query, params):
            latencies.setdefault(version, []).append(float(latency))
            failed = status == RequestStatus.ERROR and (
                code is None or code in VERSION_FAILURE_CODES
            )
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


def usage_by_version(log_path: Path, use_case: str | None = None) -> list[VersionUsage]:
    """Count, success rate, mean latency and last use of every version in the retained log."""
    if not log_path.exists():
        return []
    query = (
        "SELECT use_case, model_version, shadow, COUNT(*), SUM(status = 'ok'), "
        "AVG(latency_ms), MAX(ts) FROM requests"
    )
    params: tuple[str, ...] = ()
    if use_case is not None:
        query += " WHERE use_case = ?"
        params = (use_case,)
    query += " GROUP BY use_case, model_version, shadow ORDER BY use_case, model_version, shadow"
    with connect(log_path) as db:
        rows = db.execute(query, params).fetchall()
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
    log_path: Path,
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
    if not log_path.exists():
        return
    query = (
        "SELECT r.id, r.ts, r.use_case, r.model_version, r.request_json, r.output, f.rating, "
        "f.corrected_output FROM requests r LEFT JOIN feedback f ON f.response_id = r.id "
        "WHERE r.use_case = ? AND r.ts >= ? AND r.shadow = 0 AND r.status = 'ok' "
        "AND r.guardrail = 'pass'"
    )
    params: list[Any] = [use_case, since]
    if without_violations:
        # The column is NOT NULL; the writer stores "no violations" as the JSON '[]'.
        query += " AND r.violations = '[]'"
    if min_rating is not None:
        query += " AND (f.rating >= ? OR f.corrected_output IS NOT NULL)"
        params.append(min_rating)
    query += " ORDER BY r.ts DESC"
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit)
    with connect(log_path) as db:
        cursor: sqlite3.Cursor = db.execute(query, params)
        for row in cursor:
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
    log_path: Path, use_case: str, *, since: float, limit: int = 5_000
) -> list[RecordedOutput]:
    """The newest successful live outputs of `use_case` since `since` (shadows excluded)."""
    if not log_path.exists():
        return []
    with connect(log_path) as db:
        rows = db.execute(
            "SELECT model_version, output, ts, id, violations FROM requests "
            "WHERE use_case = ? AND shadow = 0 AND status = ? AND ts >= ? "
            "AND output IS NOT NULL ORDER BY ts DESC LIMIT ?",
            (use_case, RequestStatus.OK.value, since, limit),
        ).fetchall()
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
    log_path: Path,
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
    if not log_path.exists():
        return []
    with connect(log_path) as db:
        rows = db.execute(
            "SELECT s.output, l.output FROM requests AS s JOIN requests AS l "
            "ON l.id = s.mirror_of WHERE s.use_case = ? AND s.shadow = 1 "
            "AND s.model_version = ? AND l.model_version = ? AND l.shadow = 0 "
            "AND s.status = ? AND l.status = ? AND s.ts >= ? AND s.ts < ? "
            "AND s.output IS NOT NULL AND l.output IS NOT NULL ORDER BY s.ts DESC LIMIT ?",
            (
                use_case,
                version,
                against,
                RequestStatus.OK.value,
                RequestStatus.OK.value,
                since,
                until,
                limit,
            ),
        ).fetchall()
    return [(str(mirrored), str(live)) for mirrored, live in rows]
