"""Violations persisted in SQLite (``violations.db`` in the state folder), with a report.

Each row is one finding on one output: use case, model version, policy, check, category,
severity, intervention, time, and a redacted sample — PII masked, then truncated — so the
store never becomes a second copy of the personal data it exists to keep out of outputs.
The clock is injected so tests control time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import StateStoreError
from reconciler.guardrails.checks.pii import mask_pii
from reconciler.guardrails.verdicts import Verdict

DATABASE_NAME = "violations.db"
SAMPLE_CHARS = 160

Clock = Callable[[], datetime]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS violations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    use_case TEXT NOT NULL,
    version TEXT NOT NULL,
    policy TEXT NOT NULL,
    check_name TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    intervention TEXT NOT NULL,
    sample TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS violations_by_use_case ON violations (use_case, recorded_at);
"""
# The logged request a finding came from: the monitor re-reads overlapping windows of the
# request log, and a finding is stored once per request however often it is read.
_SOURCE_COLUMN = "ALTER TABLE violations ADD COLUMN source TEXT"
_SOURCE_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS violations_once_per_source "
    "ON violations (source, policy, check_name) WHERE source IS NOT NULL"
)


def redact_sample(text: str, limit: int = SAMPLE_CHARS) -> str:
    """``text`` with PII masked, cut to ``limit`` characters (masking first: a cut could
    split a card number into a shape that no longer looks like one)."""
    masked = " ".join(mask_pii(text).split())
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ViolationRecord:
    recorded_at: datetime
    use_case: str
    version: str
    policy: str
    check: str
    category: str
    severity: str
    intervention: str
    sample: str

    def to_json(self) -> dict[str, Any]:
        return {
            "recordedAt": self.recorded_at.isoformat(),
            "useCase": self.use_case,
            "version": self.version,
            "policy": self.policy,
            "check": self.check,
            "category": self.category,
            "severity": self.severity,
            "intervention": self.intervention,
            "sample": self.sample,
        }


@dataclass(frozen=True)
class ViolationReport:
    """A summary of one use case's violations."""

    use_case: str
    total: int
    by_category: dict[str, int]
    by_severity: dict[str, int]
    by_version: dict[str, int]
    latest: tuple[ViolationRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "useCase": self.use_case,
            "total": self.total,
            "byCategory": self.by_category,
            "bySeverity": self.by_severity,
            "byVersion": self.by_version,
            "latest": [r.to_json() for r in self.latest],
        }


class ViolationStore:
    """The violation log of one state folder."""

    def __init__(self, state_dir: Path, *, clock: Clock = _utc_now) -> None:
        self.path = state_dir / DATABASE_NAME
        self._clock = clock
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            with self._connection() as connection:
                connection.executescript(_SCHEMA)
                columns = {row[1] for row in connection.execute("PRAGMA table_info(violations)")}
                if "source" not in columns:  # a store made before sources were kept
                    connection.execute(_SOURCE_COLUMN)
                connection.execute(_SOURCE_INDEX)
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreError(f"cannot use the violation store {self.path}: {exc}") from exc

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=10)
        try:
            with connection:
                yield connection
        finally:
            connection.close()

    def record(
        self,
        *,
        use_case: str,
        version: str,
        text: str,
        verdict: Verdict,
        source: str | None = None,
    ) -> int:
        """Store one row per finding of ``verdict``; returns how many were stored.

        With a ``source`` (the logged request's id), findings already stored for it are
        skipped.
        """
        if not verdict.flagged:
            return 0
        now = self._clock().astimezone(UTC).isoformat()
        sample = redact_sample(text)
        rows = [
            (
                now,
                use_case,
                version,
                f.policy,
                f.check,
                f.category,
                f.severity.value,
                f.intervention.value,
                sample,
                source,
            )
            for f in verdict.findings
        ]
        with self._connection() as connection:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO violations (recorded_at, use_case, version, policy, "
                "check_name, category, severity, intervention, sample, source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return connection.total_changes - before

    def violations(self, use_case: str, *, since: datetime | None = None) -> list[ViolationRecord]:
        """The use case's violations, newest first."""
        query = (
            "SELECT recorded_at, use_case, version, policy, check_name, category, severity, "
            "intervention, sample FROM violations WHERE use_case = ?"
        )
        parameters: list[str] = [use_case]
        if since is not None:
            query += " AND recorded_at >= ?"
            parameters.append(since.astimezone(UTC).isoformat())
        with self._connection() as connection:
            rows = connection.execute(query + " ORDER BY recorded_at DESC, id DESC", parameters)
            return [
                ViolationRecord(datetime.fromisoformat(row[0]), *row[1:]) for row in rows.fetchall()
            ]

    def report(self, use_case: str, *, latest: int = 10) -> ViolationReport:
        records = self.violations(use_case)

        def count(key: Callable[[ViolationRecord], str]) -> dict[str, int]:
            counts: dict[str, int] = {}
            for record in records:
                counts[key(record)] = counts.get(key(record), 0) + 1
            return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

        return ViolationReport(
            use_case=use_case,
            total=len(records),
            by_category=count(lambda r: r.category),
            by_severity=count(lambda r: r.severity),
            by_version=count(lambda r: r.version),
            latest=tuple(records[:latest]),
        )
