"""Analysis: judge one window of a candidate's traffic against thresholds (Argo Rollouts'
analysis runs). Pure: the window's figures are measured by the caller and passed in.

Each judgement records, per metric, the value, the threshold, the sample size and a verdict:
Successful, Failed, or Inconclusive. Too few requests in the window makes every metric
Inconclusive - a canary nobody used proves nothing - and so does a metric that could not be
measured (no latency recorded, no answer pairs to compare). The judgement is Failed when any
metric failed, Inconclusive when any could not be judged, and Successful only when all passed.

One exception, once a window is closed (its progress deadline has passed and no more traffic
will be counted): a rate the missing requests could not cure. Had the window reached
`minRequests` with every missing request clean, the error or guardrail-violation rate would be
`count / minRequests`; when even that breaches the maximum, the step has failed on the evidence
it has - a canary whose every answer was blocked is not "no data".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.spec.model import AnalysisMetrics, ShadowAnalysisMetrics


class AnalysisOutcome(enum.StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class Metric(enum.StrEnum):
    ERROR_RATE = "errorRate"
    GUARDRAIL_VIOLATION_RATE = "guardrailViolationRate"
    LATENCY_P95_MS = "latencyP95Ms"
    BEHAVIOR_SIMILARITY = "behaviorSimilarity"


class Bound(enum.StrEnum):
    MAX = "max"
    MIN = "min"


@dataclass(frozen=True)
class Threshold:
    metric: Metric
    bound: Bound
    limit: float

    def describe(self) -> str:
        return f"{self.bound.value} {self.limit:g}"

    def as_json(self) -> dict[str, Any]:
        return {"metric": self.metric.value, "bound": self.bound.value, "limit": self.limit}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Threshold:
        return cls(Metric(data["metric"]), Bound(data["bound"]), float(data["limit"]))


def thresholds_of(metrics: AnalysisMetrics) -> tuple[Threshold, ...]:
    found = []
    if metrics.error_rate is not None:
        found.append(Threshold(Metric.ERROR_RATE, Bound.MAX, metrics.error_rate.max))
    if metrics.guardrail_violation_rate is not None:
        limit = metrics.guardrail_violation_rate.max
        found.append(Threshold(Metric.GUARDRAIL_VIOLATION_RATE, Bound.MAX, limit))
    if metrics.latency_p95_ms is not None:
        found.append(Threshold(Metric.LATENCY_P95_MS, Bound.MAX, metrics.latency_p95_ms.max))
    if isinstance(metrics, ShadowAnalysisMetrics) and metrics.behavior_similarity is not None:
        limit = metrics.behavior_similarity.min
        found.append(Threshold(Metric.BEHAVIOR_SIMILARITY, Bound.MIN, limit))
    return tuple(found)


@dataclass(frozen=True)
class WindowMetrics:
    """What the gateway saw of the candidate in one window (live, or mirrored for a shadow).

    Errors count failures of the version itself (its backend raised, timed out or produced
    nothing), never a client's bad request.
    """

    requests: int
    errors: int = 0
    guardrail_violations: int = 0
    latency_p95_ms: float | None = None
    # Shadow windows only: mean similarity of the candidate's answers to the champion's
    # answers to the same live prompts, and how many pairs it was measured on.
    behavior_similarity: float | None = None
    compared: int = 0

    def count(self, metric: Metric) -> int | None:
        """How many requests went wrong in the way a rate metric counts; None otherwise."""
        if metric is Metric.ERROR_RATE:
            return self.errors
        if metric is Metric.GUARDRAIL_VIOLATION_RATE:
            return self.guardrail_violations
        return None

    def value(self, metric: Metric) -> tuple[float | None, int]:
        """The metric's value in this window and the sample size it rests on."""
        if metric is Metric.ERROR_RATE:
            return (self.errors / self.requests if self.requests else None), self.requests
        if metric is Metric.GUARDRAIL_VIOLATION_RATE:
            rate = self.guardrail_violations / self.requests if self.requests else None
            return rate, self.requests
        if metric is Metric.LATENCY_P95_MS:
            return self.latency_p95_ms, self.requests
        return self.behavior_similarity, self.compared


NO_TRAFFIC = WindowMetrics(requests=0)


@dataclass(frozen=True)
class Measurement:
    metric: Metric
    value: float | None
    threshold: Threshold
    sample_size: int
    outcome: AnalysisOutcome

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.4g}"
        return (
            f"{self.metric.value} {shown} ({self.threshold.describe()}, n={self.sample_size}): "
            f"{self.outcome.value}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric.value,
            "value": self.value,
            "threshold": self.threshold.as_json(),
            "sample_size": self.sample_size,
            "outcome": self.outcome.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(
            Metric(data["metric"]),
            None if data["value"] is None else float(data["value"]),
            Threshold.from_json(data["threshold"]),
            int(data["sample_size"]),
            AnalysisOutcome(data["outcome"]),
        )


@dataclass(frozen=True)
class Analysis:
    """The verdict on one window, with every measurement behind it."""

    outcome: AnalysisOutcome
    requests: int
    min_requests: int
    measurements: tuple[Measurement, ...]

    @property
    def summary(self) -> str:
        if self.requests < self.min_requests and self.outcome is AnalysisOutcome.FAILED:
            breached = "; ".join(
                m.describe() for m in self.measurements if m.outcome is AnalysisOutcome.FAILED
            )
            return (
                f"{breached}: only {self.requests} requests by the deadline, fewer than "
                f"minRequests {self.min_requests}, but the rate breaches its maximum even "
                "had every missing request been clean"
            )
        if self.requests < self.min_requests:
            return (
                f"{self.requests} requests in the window, fewer than minRequests "
                f"{self.min_requests}: inconclusive"
            )
        if self.outcome is AnalysisOutcome.SUCCESSFUL:
            return f"passed ({self.requests} requests)"
        relevant = [m for m in self.measurements if m.outcome is self.outcome]
        return "; ".join(m.describe() for m in relevant) or self.outcome.value


def _incurable(window: WindowMetrics, threshold: Threshold, min_requests: int) -> bool:
    """Whether a rate breaches its maximum even counting every missing request as clean."""
    count = window.count(threshold.metric)
    if count is None or threshold.bound is not Bound.MAX or window.requests == 0:
        return False
    return count / max(min_requests, window.requests) > threshold.limit


def measure(
    window: WindowMetrics,
    thresholds: tuple[Threshold, ...],
    min_requests: int,
    *,
    window_closed: bool = False,
) -> Analysis:
    """Judge `window`. `window_closed`: no more traffic will be counted in it (its deadline
    has passed), so a breach the missing requests could not cure is a failure already."""
    enough = window.requests >= min_requests
    measurements = []
    for threshold in thresholds:
        value, sample = window.value(threshold.metric)
        if not enough and window_closed and _incurable(window, threshold, min_requests):
            outcome = AnalysisOutcome.FAILED
        elif not enough or value is None or sample == 0:
            outcome = AnalysisOutcome.INCONCLUSIVE
        elif threshold.bound is Bound.MAX:
            outcome = (
                AnalysisOutcome.FAILED if value > threshold.limit else AnalysisOutcome.SUCCESSFUL
            )
        else:
            outcome = (
                AnalysisOutcome.FAILED if value < threshold.limit else AnalysisOutcome.SUCCESSFUL
            )
        measurements.append(Measurement(threshold.metric, value, threshold, sample, outcome))
    outcomes = {m.outcome for m in measurements}
    if AnalysisOutcome.FAILED in outcomes:
        overall = AnalysisOutcome.FAILED
    elif not enough or AnalysisOutcome.INCONCLUSIVE in outcomes:
        overall = AnalysisOutcome.INCONCLUSIVE
    else:
        overall = AnalysisOutcome.SUCCESSFUL
    return Analysis(overall, window.requests, min_requests, tuple(measurements))
