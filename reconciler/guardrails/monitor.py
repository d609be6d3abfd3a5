"""The guardrail monitor: violation rates per model version over logged outputs.

The apply engine calls `monitor_outputs` on the gateway's request log (or a window of it);
a version whose rate of critical violations exceeds the limit should be rolled back. Fewer
outputs than ``min_outputs`` is too little evidence to judge either way, so such a version
never counts as exceeding — the caller decides what no data means (the rollout analysis
pauses on it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.guardrails.engine import GuardrailEngine
from reconciler.guardrails.store import ViolationStore
from reconciler.spec.model import Severity

CHECK_CHUNK = 256


@dataclass(frozen=True)
class LoggedOutput:
    use_case: str
    version: str
    text: str
    timestamp: datetime


@dataclass(frozen=True)
class VersionRates:
    """Violation counts of one model version of one use case."""

    use_case: str
    version: str
    outputs: int
    flagged: int
    critical: int
    by_category: Mapping[str, int] = field(default_factory=dict)

    @property
    def violation_rate(self) -> float:
        return self.flagged / self.outputs if self.outputs else 0.0

    @property
    def critical_rate(self) -> float:
        return self.critical / self.outputs if self.outputs else 0.0


@dataclass(frozen=True)
class MonitorReport:
    rates: tuple[VersionRates, ...]
    critical_rate_limit: float
    min_outputs: int

    @property
    def exceeding(self) -> tuple[VersionRates, ...]:
        """Versions whose critical-violation rate is above the limit, on enough outputs."""
        return tuple(
            r
            for r in self.rates
            if r.outputs >= self.min_outputs and r.critical_rate > self.critical_rate_limit
        )

    @property
    def rollback_needed(self) -> bool:
        return bool(self.exceeding)

    def rates_of(self, use_case: str, version: str) -> VersionRates | None:
        return next((r for r in self.rates if (r.use_case, r.version) == (use_case, version)), None)


def monitor_outputs(
    outputs: Iterable[LoggedOutput],
    engines: Mapping[str, GuardrailEngine],
    *,
    critical_rate_limit: float,
    since: datetime | None = None,
    min_outputs: int = 1,
    store: ViolationStore | None = None,
) -> MonitorReport:
    """Check logged outputs (those at or after ``since``) and rate each (use case, version).

    ``engines`` maps a use case to its compiled policies; outputs of other use cases are not
    counted. Outputs are checked in batches per use case. With a ``store``, each violation
    found is also recorded.
    """
    if not 0.0 <= critical_rate_limit <= 1.0:
        raise ValueError(f"critical_rate_limit is a ratio in 0..1; got {critical_rate_limit}")
    by_use_case: dict[str, list[LoggedOutput]] = {}
    for output in outputs:
        if output.use_case in engines and (since is None or output.timestamp >= since):
            by_use_case.setdefault(output.use_case, []).append(output)

    counts: dict[tuple[str, str], dict[str, int]] = {}
    categories: dict[tuple[str, str], dict[str, int]] = {}
    for use_case, logged in by_use_case.items():
        for start in range(0, len(logged), CHECK_CHUNK):
            chunk = logged[start : start + CHECK_CHUNK]
            verdicts = engines[use_case].check_batch([o.text for o in chunk])
            for output, verdict in zip(chunk, verdicts, strict=True):
                key = (use_case, output.version)
                tally = counts.setdefault(key, {"outputs": 0, "flagged": 0, "critical": 0})
                tally["outputs"] += 1
                tally["flagged"] += verdict.flagged
                tally["critical"] += verdict.severity is Severity.CRITICAL
                per_category = categories.setdefault(key, {})
                for category in verdict.categories:
                    per_category[category] = per_category.get(category, 0) + 1
                if store is not None:
                    store.record(
                        use_case=use_case, version=output.version, text=output.text, verdict=verdict
                    )
    rates = tuple(
        VersionRates(
            use_case=use_case,
            version=version,
            outputs=tally["outputs"],
            flagged=tally["flagged"],
            critical=tally["critical"],
            by_category=dict(sorted(categories[(use_case, version)].items())),
        )
        for (use_case, version), tally in sorted(counts.items())
    )
    return MonitorReport(rates, critical_rate_limit, min_outputs)
