"""The guardrail monitor: violation rates per model version over logged outputs.

The apply engine calls `monitor_outputs` on the gateway's request log (or a window of it);
a version whose rate of *critical* outputs - outputs with a finding whose policy maps it to
the `rollback` intervention (by default, the critical severity) - exceeds the limit should be
rolled back. Fewer outputs than ``min_outputs`` is too little evidence to judge either way,
so such a version never counts as exceeding; the caller decides what no data means.

An output the gateway's inline guard already judged carries its findings as labels
(``category:policy/check:severity``); those are counted as they are - the logged text of a
blocked output is its replacement, so checking it again would miss what the model said - and
were recorded in the violation store when they happened. Outputs without labels are checked
here, and what is found is recorded once per logged request, however often the monitor runs.

Engagement checks are also judged over the window: per version, the share of outputs in which
an engagement check saw an unhealthy signal (its findings, inline or fresh) is compared with
that check's ``windowViolationRate`` (`EngagementRate`). A single manipulative line is
blocked or logged where it is said; a version that keeps saying them is what the window
catches, and the caller applies the check's intervention to the version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.guardrails.engine import DEFAULT_INTERVENTIONS, GuardrailEngine
from reconciler.guardrails.store import ViolationStore
from reconciler.spec.guardrail_parameters import EngagementParameters, parse_parameters
from reconciler.spec.model import CheckType, Intervention, Severity

CHECK_CHUNK = 256


@dataclass(frozen=True)
class LoggedOutput:
    use_case: str
    version: str
    text: str
    timestamp: datetime
    request_id: str | None = None  # the request log's row id, so a finding is stored once
    inline_violations: tuple[str, ...] = ()  # labels the gateway's guard attached


@dataclass(frozen=True)
class _Judged:
    flagged: bool
    critical: bool
    categories: tuple[str, ...]
    checks: frozenset[tuple[str, str]]  # (policy, check) of each finding


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
class EngagementRate:
    """One engagement check over one version's outputs in the window, against its limit."""

    use_case: str
    version: str
    policy: str
    check: str
    outputs: int
    unhealthy: int  # outputs in which the check saw an unhealthy signal
    limit: float  # the check's windowViolationRate
    intervention: Intervention  # what the policy maps the check's severity to

    @property
    def name(self) -> str:
        return f"{self.policy}/{self.check}"

    @property
    def rate(self) -> float:
        return self.unhealthy / self.outputs if self.outputs else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "check": self.name,
            "version": self.version,
            "outputs": self.outputs,
            "unhealthy": self.unhealthy,
            "rate": self.rate,
            "limit": self.limit,
            "intervention": self.intervention.value,
        }


@dataclass(frozen=True)
class _EngagementLimit:
    policy: str
    check: str
    limit: float
    intervention: Intervention


@dataclass(frozen=True)
class MonitorReport:
    rates: tuple[VersionRates, ...]
    critical_rate_limit: float
    min_outputs: int
    engagement: tuple[EngagementRate, ...] = ()

    @property
    def exceeding(self) -> tuple[VersionRates, ...]:
        """Versions whose critical-violation rate is above the limit, on enough outputs."""
        return tuple(
            r
            for r in self.rates
            if r.outputs >= self.min_outputs and r.critical_rate > self.critical_rate_limit
        )

    @property
    def engagement_exceeding(self) -> tuple[EngagementRate, ...]:
        """Engagement checks whose window rate is above their limit, on enough outputs."""
        return tuple(
            e for e in self.engagement if e.outputs >= self.min_outputs and e.rate > e.limit
        )

    @property
    def rollback_needed(self) -> bool:
        return bool(self.exceeding) or any(
            e.intervention is Intervention.ROLLBACK for e in self.engagement_exceeding
        )

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
    engagement: list[EngagementRate] = []
    for use_case, logged in by_use_case.items():
        engine = engines[use_case]
        judgements = _judge(engine, logged, use_case, store)
        engagement += _engagement_rates(engine, use_case, logged, judgements)
        for output, judged in zip(logged, judgements, strict=True):
            key = (use_case, output.version)
            tally = counts.setdefault(key, {"outputs": 0, "flagged": 0, "critical": 0})
            tally["outputs"] += 1
            tally["flagged"] += judged.flagged
            tally["critical"] += judged.critical
            per_category = categories.setdefault(key, {})
            for category in judged.categories:
                per_category[category] = per_category.get(category, 0) + 1
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
    return MonitorReport(rates, critical_rate_limit, min_outputs, tuple(engagement))


def _engagement_rates(
    engine: GuardrailEngine,
    use_case: str,
    logged: Sequence[LoggedOutput],
    judgements: Sequence[_Judged],
) -> list[EngagementRate]:
    """Per engagement check of ``engine`` and per version: its window over these outputs."""
    limits = []
    for compiled in engine.checks:
        spec = compiled.check.spec
        if spec.type is not CheckType.ENGAGEMENT:
            continue
        parameters = parse_parameters(spec)
        if not isinstance(parameters, EngagementParameters):  # the type says it is
            continue
        limits.append(
            _EngagementLimit(
                compiled.policy, spec.name, parameters.window_violation_rate, compiled.intervention
            )
        )
    if not limits:
        return []
    outputs: dict[str, int] = {}
    unhealthy: dict[tuple[str, str, str], int] = {}
    for output, judged in zip(logged, judgements, strict=True):
        outputs[output.version] = outputs.get(output.version, 0) + 1
        for policy, check in judged.checks:
            key = (output.version, policy, check)
            unhealthy[key] = unhealthy.get(key, 0) + 1
    return [
        EngagementRate(
            use_case=use_case,
            version=version,
            policy=limit.policy,
            check=limit.check,
            outputs=count,
            unhealthy=unhealthy.get((version, limit.policy, limit.check), 0),
            limit=limit.limit,
            intervention=limit.intervention,
        )
        for version, count in sorted(outputs.items())
        for limit in limits
    ]


def _judge(
    engine: GuardrailEngine,
    logged: Sequence[LoggedOutput],
    use_case: str,
    store: ViolationStore | None,
) -> list[_Judged]:
    """Per output: its inline labels read back, or a fresh check of its text (recorded)."""
    judged: dict[int, _Judged] = {}
    interventions = {(c.policy, c.check.spec.name): c.intervention for c in engine.checks}
    unchecked = []
    for index, output in enumerate(logged):
        if output.inline_violations:
            judged[index] = _from_labels(output.inline_violations, interventions)
        else:
            unchecked.append(index)
    for start in range(0, len(unchecked), CHECK_CHUNK):
        chunk = unchecked[start : start + CHECK_CHUNK]
        verdicts = engine.check_batch([logged[i].text for i in chunk])
        for index, verdict in zip(chunk, verdicts, strict=True):
            output = logged[index]
            judged[index] = _Judged(
                flagged=verdict.flagged,
                critical=any(f.intervention is Intervention.ROLLBACK for f in verdict.findings),
                categories=tuple(verdict.categories),
                checks=frozenset((f.policy, f.check) for f in verdict.findings),
            )
            if store is not None:
                store.record(
                    use_case=use_case,
                    version=output.version,
                    text=output.text,
                    verdict=verdict,
                    source=output.request_id,
                )
    return [judged[i] for i in range(len(logged))]


def _from_labels(
    labels: Sequence[str], interventions: Mapping[tuple[str, str], Intervention]
) -> _Judged:
    """What the inline guard found, from its ``category:policy/check:severity`` labels."""
    critical = False
    categories: list[str] = []
    checks: set[tuple[str, str]] = set()
    for label in labels:
        category, _, rest = label.partition(":")
        where, _, severity = rest.rpartition(":")
        policy, _, check = where.partition("/")
        categories.append(category)
        checks.add((policy, check))
        intervention = interventions.get((policy, check))
        if intervention is None:  # a check since removed: judge by its severity's default
            try:
                intervention = DEFAULT_INTERVENTIONS[Severity(severity)]
            except ValueError:
                intervention = Intervention.LOG_ONLY
        critical = critical or intervention is Intervention.ROLLBACK
    return _Judged(
        flagged=True,
        critical=critical,
        categories=tuple(dict.fromkeys(categories)),
        checks=frozenset(checks),
    )
