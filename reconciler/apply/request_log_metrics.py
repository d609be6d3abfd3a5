"""Canary metrics read from the gateway's request log (the traffic it really served)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from reconciler.apply.analysis import VersionMetrics


class RequestLogMetrics:
    """`MetricsSource` over the gateway's SQLite request log."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path

    def window(
        self, use_case: str, since: float, until: float | None = None
    ) -> Mapping[str, VersionMetrics]:
        from reconciler.gateway.log_queries import window_metrics

        windows = window_metrics(self.log_path, use_case, since=since, until=until)
        return MappingProxyType(
            {
                version: VersionMetrics(
                    requests=w.requests,
                    error_rate=w.error_rate or 0.0,
                    guardrail_violation_rate=w.guardrail_violation_rate or 0.0,
                    latency_p95_ms=w.p95_latency_ms,
                )
                for version, w in windows.items()
            }
        )
