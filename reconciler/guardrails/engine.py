"""The engine: guardrail policies compiled into one checker of batches of texts.

`compile_policies` builds every check of every policy once (regexes compiled, parameters
typed); `GuardrailEngine.check_batch` then runs them over a shared `TextBatch`, so the batch
is embedded once however many semantic and engagement checks the policies hold, and each
check runs once per batch rather than once per text. Each finding carries the intervention
its own policy maps its severity to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.guardrails.checks import Check, build_check
from reconciler.guardrails.checks.engagement import EngagementCheck, EngagementWindow
from reconciler.guardrails.embeddings import Embedder, TextBatch
from reconciler.guardrails.verdicts import Finding, Verdict
from reconciler.spec.guardrail_parameters import parameter_problems
from reconciler.spec.model import GuardrailPolicy, Intervention, Severity

# The desired-state model's defaults, for severities a policy's partial map leaves out: a
# missing "critical" must not quietly become log-only.
DEFAULT_INTERVENTIONS: dict[Severity, Intervention] = {
    Severity.CRITICAL: Intervention.ROLLBACK,
    Severity.HIGH: Intervention.BLOCK_OUTPUT,
    Severity.MEDIUM: Intervention.LOG_ONLY,
    Severity.LOW: Intervention.LOG_ONLY,
}


class InvalidGuardrailPolicyError(ReconcilerError):
    """A policy cannot be compiled: its check parameters are invalid."""


@dataclass(frozen=True)
class CompiledCheck:
    policy: str
    check: Check
    intervention: Intervention


class GuardrailEngine:
    """Compiled policies; one `check_batch` call checks a batch of texts against all of them."""

    def __init__(
        self,
        policies: Sequence[GuardrailPolicy],
        checks: Sequence[CompiledCheck],
        embedder: Embedder | None = None,
    ) -> None:
        self.policies = tuple(policies)
        self.checks = tuple(checks)
        self._embedder = embedder

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies)

    def check_batch(self, texts: Sequence[str]) -> list[Verdict]:
        """One verdict per text, in order."""
        batch = TextBatch(texts, self._embedder)
        findings: list[list[Finding]] = [[] for _ in batch.texts]
        signals: list[list[str]] = [[] for _ in batch.texts]
        for compiled in self.checks:
            spec = compiled.check.spec
            for row, result in enumerate(compiled.check.scan(batch)):
                signals[row] += result.signals
                if result.violated:
                    findings[row].append(
                        Finding(
                            policy=compiled.policy,
                            check=spec.name,
                            category=spec.category,
                            severity=spec.severity,
                            intervention=compiled.intervention,
                            score=result.score,
                            evidence=result.evidence,
                        )
                    )
        return [
            Verdict(findings=tuple(f), signals=tuple(dict.fromkeys(s)))
            for f, s in zip(findings, signals, strict=True)
        ]

    def check(self, text: str) -> Verdict:
        return self.check_batch([text])[0]

    def engagement_windows(self, verdicts: Iterable[Verdict]) -> dict[str, EngagementWindow]:
        """Per engagement check ("policy/check"), its window over these verdicts."""
        window = list(verdicts)
        return {
            f"{c.policy}/{c.check.spec.name}": EngagementWindow.of(
                window, limit=c.check.window_violation_rate
            )
            for c in self.checks
            if isinstance(c.check, EngagementCheck)
        }


def compile_policies(
    policies: Iterable[GuardrailPolicy],
    *,
    embedder: Embedder | None = None,
    base_path: Path = Path("."),
) -> GuardrailEngine:
    """An engine for these policies; ``base_path`` resolves relative classifier model paths.

    Raises `InvalidGuardrailPolicyError` listing every invalid check parameter.
    """
    chosen = list(policies)
    problems: list[str] = []
    compiled: list[CompiledCheck] = []
    for policy in chosen:
        for index, check in enumerate(policy.spec.checks):
            found = parameter_problems(check)
            for path, message in found:
                field = ".".join(str(p) for p in ("checks", index, "parameters", *path))
                problems.append(f"policy {policy.name}: spec.{field}: {message}")
            if found:
                continue
            compiled.append(
                CompiledCheck(
                    policy=policy.name,
                    check=build_check(check, base_path=base_path),
                    intervention=policy.spec.interventions.get(
                        check.severity, DEFAULT_INTERVENTIONS[check.severity]
                    ),
                )
            )
    if problems:
        raise InvalidGuardrailPolicyError("; ".join(problems))
    return GuardrailEngine(chosen, compiled, embedder)
