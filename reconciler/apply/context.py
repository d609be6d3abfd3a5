"""The state of applying: the context shared by every use case, and one use case's run."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.journal import Journal
from reconciler.apply.locks import UseCaseLocks
from reconciler.apply.ports import MetricsSource, ModelBuilder, Notifier
from reconciler.clock import Clock
from reconciler.notifications.events import SilentNotifier
from reconciler.observe.state import RegisteredModelSnapshot, TrafficSnapshot
from reconciler.registry.interface import Registry
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore


class Reporter:
    """Where progress lines go (the CLI prints them; tests collect them)."""

    def __init__(self, sink: list[str] | None = None) -> None:
        self.lines: list[str] = [] if sink is None else sink

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@dataclass(frozen=True)
class ApplyContext:
    repo: Path
    state_dir: Path
    desired: DesiredState
    registry: Registry
    # The state store the route table, journal and request log live in, and its locks.
    database: StateDatabase
    locks: UseCaseLocks
    traffic: TrafficStore
    journal: Journal
    clock: Clock
    builder: ModelBuilder
    metrics: MetricsSource | None
    report: Reporter
    # Multiplies the rollout's durations (bake time, analysis interval, progress deadline)
    # alike: 0.001 turns a 30m bake into 1.8 s for demos and tests.
    time_scale: float = 1.0
    # True: drive each rollout to an end (apply). False: advance it once and return, so a
    # controller cycle never blocks on a bake.
    drive_rollouts: bool = True
    # While waiting on a bake, how often a driving apply looks for an operator's control.
    control_poll_seconds: float = 5.0
    # Who hears about rollout events, drift and guardrail findings (the desired state's
    # webhooks); delivery happens off this thread.
    notifier: Notifier = field(default_factory=SilentNotifier)


class StepResult(enum.Enum):
    DONE = "done"
    PROGRESSING = "progressing"  # a rollout advanced and is not finished: advance it later
    SUSPENDED = "suspended"  # waits for traffic or an operator; apply again later
    DEGRADED = "degraded"  # failed or rolled back; the use case needs attention


@dataclass
class UseCaseRun:
    """Mutable while one use case is applied; never shared between use cases."""

    context: ApplyContext
    use_case: UseCase
    identity: UseCaseIdentity
    base: str | None = None
    candidate: str | None = None
    requeue_after: float | None = None  # a progressing rollout asks to be advanced again
    messages: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.use_case.name

    @property
    def model_name(self) -> str:
        return self.use_case.spec.registered_model

    def model(self) -> RegisteredModelSnapshot | None:
        return self.context.registry.snapshot([self.model_name])[self.model_name]

    def traffic(self) -> TrafficSnapshot:
        return self.context.traffic.read(self.name)

    def say(self, message: str) -> None:
        self.context.report(f"{self.name}: {message}")
