"""Prometheus metrics of the control plane itself (the gateway exports the traffic's).

- `reconciler_reconcile_duration_seconds` (histogram) and `reconciler_reconcile_cycles_total`
  (by result): every reconcile cycle;
- `reconciler_reconcile_errors_total{use_case}`: use cases that ended Degraded, and cycles
  that failed as a whole (`use_case=""`: an invalid commit, an unreachable registry);
- `reconciler_last_successful_sync_timestamp_seconds{use_case}`: when a cycle last found the
  use case in sync or applied it without failure;
- `reconciler_rollouts{phase}`: use cases whose rollout for the current desired state is in
  each phase, read from the journal at scrape time;
- `reconciler_notifications_total{result}`: webhook deliveries delivered, failed, dropped.

One `CollectorRegistry` per process (not the library's global one), so tests can start
several servers in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from reconciler.apply.journal import Journal
from reconciler.controller import CycleReport
from reconciler.health import Health
from reconciler.notifications.dispatcher import Dispatcher
from reconciler.rollout.state import Phase
from reconciler.spec.loader import DesiredState

CONTENT_TYPE = CONTENT_TYPE_LATEST
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class _RolloutPhases(Collector):
    def __init__(self, journal: Journal, desired: Callable[[], DesiredState | None]) -> None:
        self.journal = journal
        self.desired = desired

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "reconciler_rollouts",
            "Use cases whose rollout for the current desired state is in each phase.",
            labels=["phase"],
        )
        counts = dict.fromkeys(Phase, 0)
        desired = self.desired()
        if desired is not None:
            for use_case in desired.use_cases:
                state = self.journal.rollout(use_case.name)
                if state is not None and state.digest == desired.identities[use_case.name].digest:
                    counts[state.phase] += 1
        for phase, count in counts.items():
            family.add_metric([phase.value], count)
        yield family


class _Notifications(Collector):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "reconciler_notifications",
            "Webhook deliveries, by result.",
            labels=["result"],
        )
        family.add_metric(["delivered"], self.dispatcher.delivered)
        family.add_metric(["failed"], self.dispatcher.failed)
        family.add_metric(["dropped"], self.dispatcher.dropped)
        yield family


class ControlPlaneMetrics:
    def __init__(
        self,
        *,
        journal: Journal,
        dispatcher: Dispatcher,
        desired: Callable[[], DesiredState | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        self.duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "How long each reconcile cycle took.",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.cycles = Counter(
            "reconciler_reconcile_cycles",
            "Reconcile cycles, by result (ok: the cycle ran; error: it failed as a whole).",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "reconciler_reconcile_errors",
            'Use cases that ended Degraded in a cycle; use_case="" for a failed cycle.',
            ["use_case"],
            registry=self.registry,
        )
        self.last_sync = Gauge(
            "reconciler_last_successful_sync_timestamp_seconds",
            "When a cycle last found the use case in sync or applied it without failure.",
            ["use_case"],
            registry=self.registry,
        )
        self.registry.register(_RolloutPhases(journal, desired))
        self.registry.register(_Notifications(dispatcher))

    def observe_cycle(self, report: CycleReport, seconds: float) -> None:
        self.duration.observe(seconds)
        if report.error is not None:
            self.cycles.labels(result="error").inc()
            self.errors.labels(use_case="").inc()
            return
        self.cycles.labels(result="ok").inc()
        now = self._clock()
        for name in report.in_sync:
            self.last_sync.labels(use_case=name).set(now)
        for name, health in report.applied.items():
            if health is Health.DEGRADED:
                self.errors.labels(use_case=name).inc()
            else:
                self.last_sync.labels(use_case=name).set(now)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
