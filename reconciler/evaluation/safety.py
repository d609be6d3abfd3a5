"""The evaluation gate's safety measure, and what it says when it fails.

The candidate's outputs are checked with the use case's guardrail policies; ``safetyPassRate``
is the share of outputs no check flags. A failing rate alone does not say whether the
candidate encouraged self-harm or leaked a card number, so the guardrails' verdicts are kept:
`SafetyReport` groups their findings per (policy, check) with the category, the severity, how
many outputs fired it and the first such output, and renders them for the verdict's reason,
the version's tags, the evaluation run and the per-output table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler import lineage
from reconciler.guardrails.embeddings import Embedder
from reconciler.guardrails.verdicts import SEVERITY_RANK
from reconciler.guardrails.verdicts import Verdict as GuardrailVerdict
from reconciler.spec.model import GuardrailPolicy, Severity

# A reason names this many fired checks, then "+N more": it is one line in `status`.
REASON_CHECKS = 4
# Version tag values: MLflow 3 takes 100,000 characters for a model-version tag (8,000 for a
# run tag), but registries migrated from MLflow 2 keep them in a VARCHAR(5000) column.
TAG_VALUE_LIMIT = 5000


class SafetyJudge(Protocol):
    def verdicts(self, texts: Sequence[str]) -> list[GuardrailVerdict]:
        """One verdict per text, in order: its findings say which checks it violated."""
        ...


class GuardrailsJudge:
    """The guardrails package's checks of the use case's policies, as a safety judge.

    `base_path` is the repository: a classifier check names its model folder relative to it,
    and the process may run anywhere (the CLI's `--repo`, the apply engine's checkout).
    """

    def __init__(
        self,
        policies: Sequence[GuardrailPolicy],
        embedder: Embedder | None = None,
        *,
        base_path: Path = Path("."),
    ):
        from reconciler.guardrails.engine import compile_policies

        self.engine = (
            compile_policies(policies, embedder=embedder, base_path=base_path) if policies else None
        )

    def verdicts(self, texts: Sequence[str]) -> list[GuardrailVerdict]:
        if self.engine is None or not texts:
            return [GuardrailVerdict() for _ in texts]
        return self.engine.check_batch(texts)


def safety_pass_rate(verdicts: Sequence[GuardrailVerdict]) -> float:
    """The fraction (0..1) of outputs no check flagged.

    Raises `ValueError` when there are no verdicts: no outputs is no evidence, never a pass.
    """
    if not verdicts:
        raise ValueError("a safety pass rate needs at least one output to judge")
    return sum(not v.flagged for v in verdicts) / len(verdicts)


@dataclass(frozen=True)
class FiredCheck:
    """One guardrail check that flagged outputs: how many, and the first one (its output id,
    the row of the evaluation's per-output table)."""

    policy: str
    check: str
    category: str
    severity: Severity
    outputs: int
    example: int

    @property
    def name(self) -> str:
        return f"{self.policy}/{self.check}"

    def describe(self) -> str:
        return (
            f"{self.name} ({self.category}, {self.severity.value}) "
            f"x{self.outputs} e.g. output {self.example}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "check": self.check,
            "category": self.category,
            "severity": self.severity.value,
            "outputs": self.outputs,
            "example": self.example,
        }


@dataclass(frozen=True)
class SafetyReport:
    """The guardrails' verdicts on an evaluation's outputs (output id = index)."""

    verdicts: tuple[GuardrailVerdict, ...]

    @property
    def pass_rate(self) -> float:
        return safety_pass_rate(self.verdicts)

    @property
    def flagged_outputs(self) -> int:
        return sum(v.flagged for v in self.verdicts)

    @property
    def fired(self) -> tuple[FiredCheck, ...]:
        """The checks that fired, most severe first, then the most outputs."""
        seen: dict[tuple[str, str], list[Any]] = {}
        for output, verdict in enumerate(self.verdicts):
            for finding in verdict.findings:
                key = (finding.policy, finding.check)
                entry = seen.setdefault(key, [finding, set(), output])
                entry[1].add(output)
        fired = [
            FiredCheck(
                policy=finding.policy,
                check=finding.check,
                category=finding.category,
                severity=finding.severity,
                outputs=len(outputs),
                example=example,
            )
            for finding, outputs, example in seen.values()
        ]
        return tuple(sorted(fired, key=lambda f: (-SEVERITY_RANK[f.severity], -f.outputs, f.name)))

    @property
    def categories(self) -> dict[str, int]:
        """Outputs flagged per category, most first."""
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            for category in verdict.categories:
                counts[category] = counts.get(category, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def summary(self, limit: int = REASON_CHECKS) -> str:
        """The fired checks on one line, the first `limit` of them; "" when none fired."""
        fired = self.fired
        shown = ", ".join(f.describe() for f in fired[:limit])
        more = len(fired) - limit
        return f"{shown}, +{more} more" if more > 0 else shown

    def tags(self) -> dict[str, str]:
        """Version and run tags: the categories (searchable), the fired checks as JSON; both
        empty ("", "[]") when nothing fired, replacing an earlier evaluation's."""
        categories = ",".join(f"{name}:{count}" for name, count in self.categories.items())
        return {
            lineage.EVALUATION_SAFETY_CATEGORIES: _bounded(categories),
            lineage.EVALUATION_SAFETY_FINDINGS: _bounded_json([f.to_json() for f in self.fired]),
        }

    def metrics(self) -> dict[str, float]:
        return {
            "safety_flagged_outputs": float(self.flagged_outputs),
            **{f"safety_flagged/{name}": float(n) for name, n in self.categories.items()},
        }

    def columns(self, output: int) -> dict[str, str]:
        """The per-output table's guardrail columns for one output."""
        verdict = self.verdicts[output]
        return {
            "guardrail_categories": ", ".join(verdict.categories),
            "guardrail_severity": verdict.severity.value if verdict.severity else "",
            "guardrail_checks": ", ".join(
                dict.fromkeys(f"{f.policy}/{f.check}" for f in verdict.findings)
            ),
        }


def _bounded(text: str, limit: int = TAG_VALUE_LIMIT) -> str:
    """`text` cut at its last comma that fits, with ",..." saying so."""
    if len(text) <= limit:
        return text
    return text[: text.rfind(",", 0, limit - 4)] + ",..."


def _bounded_json(entries: Sequence[Mapping[str, Any]], limit: int = TAG_VALUE_LIMIT) -> str:
    """A JSON list of as many leading entries as fit, then {"more": N} for the rest."""
    kept = list(entries)
    while True:
        rest = len(entries) - len(kept)
        shown = [*kept, {"more": rest}] if rest else kept
        text = json.dumps(shown, separators=(",", ":"))
        if len(text) <= limit or not kept:
            return text
        kept.pop()
