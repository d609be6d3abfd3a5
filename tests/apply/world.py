"""A registry with a champion and an evaluated candidate, and traffic that follows the weights.

Everything runs for real - MLflow (sqlite), the route table, the journal, the gateway's
request log, on SQLite or PostgreSQL - except time: a `ManualClock` moves only when the
rollout waits, so half an hour of bake takes no time and every run is the same. The traffic
fixture plays the players' part: each time the clock moves it logs requests through the
gateway's real request log, spread over the interval, each to a version picked by the live
route table's weights (and copies to shadow routes), failing as the test says. Canary
analysis then reads that log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.context import ApplyContext, Reporter
from reconciler.apply.journal import Journal
from reconciler.apply.locks import UseCaseLocks
from reconciler.apply.ports import EvaluationOutcome
from reconciler.apply.request_log_metrics import RequestLogMetrics
from reconciler.clock import ManualClock
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore

USE_CASE = "npc-dialogue"


class BuildingNotExpected:
    """The registry already holds an evaluated candidate: nothing may be built."""

    def register_base(self, use_case: UseCase, identity: UseCaseIdentity) -> str:
        raise AssertionError("register_base called")

    def train(self, use_case: UseCase, identity: UseCaseIdentity, base_version: str) -> str:
        raise AssertionError("train called")

    def evaluate(
        self, use_case: UseCase, identity: UseCaseIdentity, candidate: str, champion: str | None
    ) -> EvaluationOutcome:
        raise AssertionError("evaluate called")


@dataclass
class World:
    repo: Path
    state_dir: Path
    tracking_uri: str
    database_url: str
    desired: DesiredState
    registry: MlflowRegistry
    database: StateDatabase
    locks: UseCaseLocks
    traffic: TrafficStore
    journal: Journal
    clock: ManualClock
    lines: list[str] = field(default_factory=list)

    def context(
        self, desired: DesiredState | None = None, *, drive_rollouts: bool = True
    ) -> ApplyContext:
        return ApplyContext(
            repo=self.repo,
            state_dir=self.state_dir,
            desired=desired or self.desired,
            registry=self.registry,
            database=self.database,
            locks=self.locks,
            traffic=self.traffic,
            journal=self.journal,
            clock=self.clock,
            builder=BuildingNotExpected(),
            metrics=RequestLogMetrics(self.database),
            report=Reporter(self.lines),
            drive_rollouts=drive_rollouts,
            # Operators are obeyed within this much manual time: fewer idle polls, same paths.
            control_poll_seconds=300,
        )

    def aliases(self) -> dict[str, str]:
        model = self.registry.snapshot([USE_CASE])[USE_CASE]
        assert model is not None
        return dict(model.aliases)

    def version_tags(self, version: str) -> dict[str, str]:
        model = self.registry.snapshot([USE_CASE])[USE_CASE]
        assert model is not None
        found = model.version(version)
        assert found is not None
        return dict(found.tags)

    def analyses(self) -> list[str]:
        """'10%: passed ...' for every analysis line the apply printed, in order."""
        return [line.split("analysis at ")[1] for line in self.lines if "analysis at " in line]


ErrorRule = Callable[[str, int], bool]  # (version, its current weight) -> request fails?
