"""Values the guardrails produce: a finding per violated check, a verdict per text.

All frozen: a verdict is a fact about one output under one set of policies, passed on to the
gateway, the evaluation gate, the monitor and the violation store unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.spec.model import Intervention, Severity

SEVERITY_RANK: dict[Severity, int] = {
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}
# When two policies map the same severity differently, the stronger intervention wins.
INTERVENTION_RANK: dict[Intervention, int] = {
    Intervention.LOG_ONLY: 1,
    Intervention.ADJUST_PARAMETERS: 2,
    Intervention.RETRAIN: 3,
    Intervention.BLOCK_OUTPUT: 4,
    Intervention.ROLLBACK: 5,
}


@dataclass(frozen=True)
class CategoryHit:
    """One category a multi-category check (the hazard classifier) found in one text."""

    category: str
    score: float
    evidence: str = ""


@dataclass(frozen=True)
class CheckResult:
    """What one check says about one text, before policy context is added."""

    violated: bool
    score: float
    evidence: str = ""
    # Named engagement signals seen in the text, healthy ones included (informational).
    signals: tuple[str, ...] = ()
    # For checks that report several categories: one finding each. Empty: one finding, in
    # the check's own category.
    hits: tuple[CategoryHit, ...] = ()


PASSED = CheckResult(violated=False, score=0.0)


@dataclass(frozen=True)
class Finding:
    """One violated check of one policy."""

    policy: str
    check: str
    category: str
    severity: Severity
    intervention: Intervention
    score: float
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "check": self.check,
            "category": self.category,
            "severity": self.severity.value,
            "intervention": self.intervention.value,
            "score": round(self.score, 4),
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Verdict:
    """Everything the policies say about one text; `flagged` when any check was violated."""

    findings: tuple[Finding, ...] = ()
    signals: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.findings)

    @property
    def categories(self) -> list[str]:
        return sorted({f.category for f in self.findings})

    @property
    def severity(self) -> Severity | None:
        """The highest severity among the findings; None when nothing was found."""
        worst = _worst_finding(self.findings)
        return worst.severity if worst else None

    @property
    def intervention(self) -> Intervention | None:
        """What to do, from the policy of the most severe finding; None when nothing was found."""
        worst = _worst_finding(self.findings)
        return worst.intervention if worst else None

    def merged(self, other: Verdict) -> Verdict:
        return Verdict(
            findings=self.findings + other.findings,
            signals=tuple(dict.fromkeys(self.signals + other.signals)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "categories": self.categories,
            "severity": self.severity.value if self.severity else None,
            "intervention": self.intervention.value if self.intervention else None,
            "findings": [f.to_json() for f in self.findings],
            "signals": list(self.signals),
        }


def _worst_finding(findings: Iterable[Finding]) -> Finding | None:
    return max(
        findings,
        key=lambda f: (SEVERITY_RANK[f.severity], INTERVENTION_RANK[f.intervention]),
        default=None,
    )
