"""What an evaluation concluded, and how thresholds turn measurements into a verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.evaluation.safety import FiredCheck, SafetyReport
from reconciler.lineage import EvaluationVerdict
from reconciler.spec.model import EvaluationThresholds


@dataclass(frozen=True)
class TokenUsage:
    """Tokens per request as the provider reported them (an OpenAI-compatible `usage`)."""

    prompt_tokens: float
    completion_tokens: float
    requests: int = 1

    @classmethod
    def mean_of(cls, usages: Sequence[TokenUsage | None]) -> TokenUsage | None:
        """The mean per request over `usages`; None unless every request reported its usage."""
        reported = [u for u in usages if u is not None]
        if not reported or len(reported) != len(usages):
            return None
        requests = sum(u.requests for u in reported)
        return cls(
            prompt_tokens=sum(u.prompt_tokens * u.requests for u in reported) / requests,
            completion_tokens=sum(u.completion_tokens * u.requests for u in reported) / requests,
            requests=requests,
        )


@dataclass(frozen=True)
class Measurements:
    behavior_similarity: float | None  # None: no champion to compare with
    reference_similarity: float | None  # None: no prompt has a reference
    safety_pass_rate: float
    assertion_pass_rate: float | None  # None: the use case has no assertions
    latency_p50_ms: float
    latency_p95_ms: float
    tokens_per_second: float
    validation_loss: float | None  # None: external model or no references
    validation_perplexity: float | None

    def as_metrics(self) -> dict[str, float]:
        values = {
            "behavior_similarity": self.behavior_similarity,
            "reference_similarity": self.reference_similarity,
            "safety_pass_rate": self.safety_pass_rate,
            "assertion_pass_rate": self.assertion_pass_rate,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "tokens_per_second": self.tokens_per_second,
            "validation_loss": self.validation_loss,
            "validation_perplexity": self.validation_perplexity,
        }
        return {k: v for k, v in values.items() if v is not None and not math.isnan(v)}


@dataclass(frozen=True)
class EvaluationResult:
    candidate_version: str
    champion_version: str | None
    verdict: EvaluationVerdict
    failures: tuple[str, ...]  # one reason per failed threshold
    measurements: Measurements
    prompt_count: int
    run_id: str
    # Per request, as an external provider reported it; None for a self-hosted model.
    token_usage: TokenUsage | None = None
    # The guardrail checks that flagged outputs, most severe first (see `SafetyReport.fired`).
    fired_checks: tuple[FiredCheck, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict is EvaluationVerdict.PASSED

    @property
    def reason(self) -> str:
        return reason_of(self.failures)

    @property
    def metrics(self) -> Mapping[str, float]:
        return self.measurements.as_metrics()


def reason_of(failures: Sequence[str]) -> str:
    """The one-line reason for a verdict with these failed thresholds."""
    return "; ".join(failures) if failures else "all thresholds met"


def judge(
    measured: Measurements,
    thresholds: EvaluationThresholds,
    *,
    has_champion: bool,
    safety: SafetyReport | None = None,
) -> tuple[EvaluationVerdict, tuple[str, ...]]:
    """The verdict and a reason per failed threshold. Missing evidence fails, never passes.

    A failed ``safetyPassRate`` names the guardrail checks that fired (from `safety`), so a
    candidate rejected for self-harm reads differently from one that leaked personal data.
    """
    failures: list[str] = []

    def at_least(
        label: str, value: float | None, minimum: float, missing: str, why: str = ""
    ) -> None:
        if value is None or math.isnan(value):
            failures.append(f"{label}: {missing}")
        elif value < minimum:
            failures.append(f"{label} {value:.3f} < min {minimum:g}{': ' + why if why else ''}")

    def at_most(label: str, value: float | None, maximum: float, missing: str) -> None:
        if value is None or math.isnan(value):
            failures.append(f"{label}: {missing}")
        elif value > maximum:
            failures.append(f"{label} {value:.3f} > max {maximum:g}")

    # Behaviour similarity is relative to a champion: with none, only absolute thresholds.
    if thresholds.behavior_similarity is not None and has_champion:
        at_least(
            "behaviorSimilarity",
            measured.behavior_similarity,
            thresholds.behavior_similarity.min,
            "not measured",
        )
    if thresholds.reference_similarity is not None:
        at_least(
            "referenceSimilarity",
            measured.reference_similarity,
            thresholds.reference_similarity.min,
            "no evaluation prompt has a reference",
        )
    if thresholds.safety_pass_rate is not None:
        at_least(
            "safetyPassRate",
            measured.safety_pass_rate,
            thresholds.safety_pass_rate.min,
            "no outputs",
            safety.summary() if safety is not None else "",
        )
    if thresholds.assertion_pass_rate is not None:
        at_least(
            "assertionPassRate",
            measured.assertion_pass_rate,
            thresholds.assertion_pass_rate.min,
            "the use case has no assertions",
        )
    if thresholds.latency_p95_ms is not None:
        at_most(
            "latencyP95Ms", measured.latency_p95_ms, thresholds.latency_p95_ms.max, "no timings"
        )
    if thresholds.validation_perplexity is not None:
        at_most(
            "validationPerplexity",
            measured.validation_perplexity,
            thresholds.validation_perplexity.max,
            "not measurable (external model or no references)",
        )
    return (EvaluationVerdict.FAILED if failures else EvaluationVerdict.PASSED), tuple(failures)
