"""Canary analysis: judge one bake window of a candidate against the rollout's thresholds.

Pure: the metrics are read by the caller (from the gateway's request log) and passed in. No
traffic is inconclusive (`NO_DATA`), never a pass: a canary that nobody used proves nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.spec.model import Analysis


@dataclass(frozen=True)
class VersionMetrics:
    """What the gateway saw of one model version in a time window."""

    requests: int
    error_rate: float
    guardrail_violation_rate: float
    latency_p95_ms: float | None


class MetricsSource(Protocol):
    def window(
        self, use_case: str, since: float, until: float | None = None
    ) -> Mapping[str, VersionMetrics]:
        """Metrics per model version of `use_case` for requests in [since, until)."""
        ...


class CheckResult(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class Judgement:
    result: CheckResult
    reasons: tuple[str, ...]
    requests: int

    @property
    def summary(self) -> str:
        if self.result is CheckResult.PASS:
            return f"passed ({self.requests} requests)"
        return "; ".join(self.reasons)


def judge(metrics: VersionMetrics | None, analysis: Analysis) -> Judgement:
    requests = metrics.requests if metrics else 0
    if metrics is None or requests < analysis.min_requests:
        return Judgement(
            CheckResult.NO_DATA,
            (f"{requests} requests in the window, fewer than minRequests {analysis.min_requests}",),
            requests,
        )
    thresholds = analysis.metrics
    reasons: list[str] = []
    if thresholds.error_rate and metrics.error_rate > thresholds.error_rate.max:
        reasons.append(f"errorRate {metrics.error_rate:.3f} > {thresholds.error_rate.max:g}")
    limit = thresholds.guardrail_violation_rate
    if limit and metrics.guardrail_violation_rate > limit.max:
        reasons.append(
            f"guardrailViolationRate {metrics.guardrail_violation_rate:.4f} > {limit.max:g}"
        )
    latency = thresholds.latency_p95_ms
    if latency and metrics.latency_p95_ms is not None and metrics.latency_p95_ms > latency.max:
        reasons.append(f"latencyP95Ms {metrics.latency_p95_ms:.0f} > {latency.max:g}")
    return Judgement(CheckResult.FAIL if reasons else CheckResult.PASS, tuple(reasons), requests)
