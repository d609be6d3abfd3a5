"""A registry with a champion and an evaluated candidate, and traffic that follows the weights.

The traffic fixture plays the gateway's part for rollout tests: it picks a version by the live
route table's weights and logs each request through the gateway's real request log, which
canary analysis then reads. Whether the candidate errors is up to each test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.builder import EvaluationOutcome
from reconciler.apply.clock import ScaledClock
from reconciler.apply.journal import Journal
from reconciler.apply.request_log_metrics import RequestLogMetrics
from reconciler.apply.run import ApplyContext, Reporter
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase
from reconciler.traffic.store import TrafficStore

USE_CASE = "npc-dialogue"
# npc-dialogue bakes 30m per step: scaled to 0.6 s, long enough for minRequests at 10%.
TIME_SCALE = 0.6 / 1800


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
    desired: DesiredState
    registry: MlflowRegistry
    traffic: TrafficStore
    journal: Journal
    log_path: Path
    lines: list[str] = field(default_factory=list)

    def context(self, desired: DesiredState | None = None) -> ApplyContext:
        return ApplyContext(
            repo=self.repo,
            state_dir=self.state_dir,
            desired=desired or self.desired,
            registry=self.registry,
            traffic=self.traffic,
            journal=self.journal,
            clock=ScaledClock(TIME_SCALE),
            builder=BuildingNotExpected(),
            metrics=RequestLogMetrics(self.log_path),
            report=Reporter(self.lines),
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


ErrorRule = Callable[[str, int], bool]  # (version, its current weight) -> request fails?
