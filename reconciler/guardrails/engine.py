"""The engine: guardrail policies compiled into one checker of batches of texts.

`compile_policies` builds every check of every policy once (regexes compiled, parameters
typed); `GuardrailEngine.check_batch` then runs them over a shared `TextBatch`, so the batch
is embedded once however many semantic and engagement checks the policies hold, and each
check runs once per batch rather than once per text. Each finding carries the intervention
its own policy maps its severity to.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.guardrails.checks import Check, build_check
from reconciler.guardrails.checks.engagement import EngagementCheck, EngagementWindow
from reconciler.guardrails.embeddings import Embedder, TextBatch
from reconciler.guardrails.verdicts import CategoryHit, CheckResult, Finding, Verdict
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


class Stage(enum.StrEnum):
    """How far an output went in the cascade: static stage only, or the full encoder too."""

    STATIC = "static"
    ENCODER = "encoder"


class GuardrailEngine:
    """Compiled policies; one `check_batch` call checks a batch of texts against all of them.

    `outputs_by_stage` counts the outputs checked so far by the stage they reached (an output
    reaches the encoder when any check needed its full sentence embedding).
    """

    def __init__(
        self,
        policies: Sequence[GuardrailPolicy],
        checks: Sequence[CompiledCheck],
        embedder: Embedder | None = None,
        static_embedder: Embedder | None = None,
    ) -> None:
        self.policies = tuple(policies)
        self.checks = tuple(checks)
        self._embedder = embedder
        self._static_embedder = static_embedder
        self._stage_lock = threading.Lock()
        self._outputs_by_stage = dict.fromkeys(Stage, 0)

    def outputs_by_stage(self) -> dict[Stage, int]:
        with self._stage_lock:
            return dict(self._outputs_by_stage)

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies)

    def check_batch(self, texts: Sequence[str]) -> list[Verdict]:
        """One verdict per text, in order."""
        batch = TextBatch(texts, self._embedder, self._static_embedder)
        findings: list[list[Finding]] = [[] for _ in batch.texts]
        signals: list[list[str]] = [[] for _ in batch.texts]
        for compiled in self.checks:
            for row, result in enumerate(compiled.check.scan(batch)):
                signals[row] += result.signals
                if result.violated:
                    findings[row] += _findings(compiled, result)
        with self._stage_lock:
            self._outputs_by_stage[Stage.ENCODER] += len(batch.encoded_rows)
            self._outputs_by_stage[Stage.STATIC] += len(batch.texts) - len(batch.encoded_rows)
        return [
            Verdict(findings=tuple(f), signals=tuple(dict.fromkeys(s)))
            for f, s in zip(findings, signals, strict=True)
        ]

    def warm_up(self, text: str = "Welcome back, traveller.") -> None:
        """Load every model the checks may need, the full encoder included, counting nothing:
        the first uncertain output must not pay for loading it."""
        batch = TextBatch([text], self._embedder, self._static_embedder)
        for compiled in self.checks:
            compiled.check.scan(batch)
        batch.embeddings()

    def check(self, text: str) -> Verdict:
        return self.check_batch([text])[0]

    def engagement_windows(self, verdicts: Iterable[Verdict]) -> dict[str, EngagementWindow]:
        """Per engagement check ("policy/check"), its window over these verdicts: outputs with
        an unhealthy signal or a finding in the check's category count against it."""
        window = list(verdicts)
        return {
            f"{c.policy}/{c.check.spec.name}": EngagementWindow.of(
                window, limit=c.check.window_violation_rate, category=c.check.spec.category
            )
            for c in self.checks
            if isinstance(c.check, EngagementCheck)
        }


def _findings(compiled: CompiledCheck, result: CheckResult) -> list[Finding]:
    """One finding per category the result names (its check's own category by default)."""
    spec = compiled.check.spec
    hits = result.hits or (CategoryHit(spec.category, result.score, result.evidence),)
    return [
        Finding(
            policy=compiled.policy,
            check=spec.name,
            category=hit.category,
            severity=spec.severity,
            intervention=compiled.intervention,
            score=hit.score,
            evidence=hit.evidence,
        )
        for hit in hits
    ]


def compile_policies(
    policies: Iterable[GuardrailPolicy],
    *,
    embedder: Embedder | None = None,
    static_embedder: Embedder | None = None,
    base_path: Path = Path("."),
) -> GuardrailEngine:
    """An engine for these policies; ``base_path`` resolves relative model and corpus paths.

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
                    check=build_check(
                        check,
                        base_path=base_path,
                        embedder=embedder,
                        static_embedder=static_embedder,
                    ),
                    intervention=policy.spec.interventions.get(
                        check.severity, DEFAULT_INTERVENTIONS[check.severity]
                    ),
                )
            )
    if problems:
        raise InvalidGuardrailPolicyError("; ".join(problems))
    return GuardrailEngine(chosen, compiled, embedder, static_embedder)
