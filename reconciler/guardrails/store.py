"""Violations persisted in the state store's ``violations`` table, with a report.

Each row is one finding on one output: use case, model version, policy, check, category,
severity, intervention, time, and a redacted sample — PII masked, then truncated — so the
store never becomes a second copy of the personal data it exists to keep out of outputs.
The clock is injected so tests control time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from reconciler.guardrails.checks.pii import mask_pii
from reconciler.guardrails.verdicts import Verdict
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase
from reconciler.state_store.upsert import insert_unless_present

SAMPLE_CHARS = 160

Clock = Callable[[], datetime]


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
    """The violation log of one state store (every gateway replica and monitor share it)."""

    def __init__(self, database: StateDatabase, *, clock: Clock = _utc_now) -> None:
        self.database = database
        self._clock = clock

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
            {
                "recorded_at": now,
                "use_case": use_case,
                "version": version,
                "policy": f.policy,
                "check_name": f.check,
                "category": f.category,
                "severity": f.severity.value,
                "intervention": f.intervention.value,
                "sample": sample,
                "source": source,
            }
            for f in verdict.findings
        ]

        def store(db: Connection) -> int:
            table = schema.violations
            stored = 0
            for row in rows:  # one by one: each says whether it was new (a row back) or not
                inserted = insert_unless_present(db, table).returning(table.c.id)
                stored += len(db.execute(inserted, row).all())
            return stored

        return int(self.database.write(store))

    def violations(self, use_case: str, *, since: datetime | None = None) -> list[ViolationRecord]:
        """The use case's violations, newest first."""
        if not self.database.exists():
            return []
        table = schema.violations
        query = select(
            table.c.recorded_at,
            table.c.use_case,
            table.c.version,
            table.c.policy,
            table.c.check_name,
            table.c.category,
            table.c.severity,
            table.c.intervention,
            table.c.sample,
        ).where(table.c.use_case == use_case)
        if since is not None:
            query = query.where(table.c.recorded_at >= since.astimezone(UTC).isoformat())
        query = query.order_by(table.c.recorded_at.desc(), table.c.id.desc())
        rows = self.database.read(lambda db: db.execute(query).all())
        return [ViolationRecord(datetime.fromisoformat(row[0]), *row[1:]) for row in rows]

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
