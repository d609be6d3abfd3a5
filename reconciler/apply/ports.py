"""What the apply engine needs from the world beyond the registry and the route table.

Small interfaces, implemented by adapters wired in `commands.py`: the model builder (training
and evaluation over MLflow + transformers, in `model_builder.py`), the metrics source
(the gateway's request log, in `request_log_metrics.py`) and the notifier (the desired
state's webhooks, in `reconciler.notifications`). Tests substitute real alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The notifier's port is shared with `propose` (proposal opened), so it lives beside the value
# it carries; apply needs it like the others.
from reconciler.notifications.events import Notifier
from reconciler.rollout.analysis import WindowMetrics
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.model import UseCase


@dataclass(frozen=True)
class EvaluationOutcome:
    passed: bool
    reason: str
    candidate: str  # may differ from the one asked for when a retrain produced a better one


class ModelBuilder(Protocol):
    """Each call is idempotent on the use case's keys: a second call finds the version the
    first one made."""

    def register_base(self, use_case: UseCase, identity: UseCaseIdentity) -> str:
        """The base version's number, registering it if no version has the base key."""
        ...

    def train(self, use_case: UseCase, identity: UseCaseIdentity, base_version: str) -> str:
        """The trained version's number, training it if no version has the target key."""
        ...

    def evaluate(
        self,
        use_case: UseCase,
        identity: UseCaseIdentity,
        candidate: str,
        champion: str | None,
    ) -> EvaluationOutcome:
        """Judge the candidate (retraining within the spec's attempts) and tag the verdict."""
        ...


class MetricsSource(Protocol):
    def window(
        self,
        use_case: str,
        version: str,
        *,
        since: float,
        until: float,
        mirrored: bool = False,
        compare_with: str | None = None,
    ) -> WindowMetrics:
        """What `version` of `use_case` did with requests in [since, until): live traffic, or
        the copies mirrored to it; with `compare_with`, also how similar its answers were to
        that version's answers to the same requests."""
        ...


__all__ = ["EvaluationOutcome", "MetricsSource", "ModelBuilder", "Notifier"]
