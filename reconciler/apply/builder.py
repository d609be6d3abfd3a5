"""What the apply engine needs from training and evaluation, as a small interface.

The implementation over MLflow + transformers lives in `reconciler.training` and
`reconciler.evaluation`; the engine only sees these three calls, each idempotent on the
use case's keys (a second call finds the version the first one made).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.model import UseCase


@dataclass(frozen=True)
class EvaluationOutcome:
    passed: bool
    reason: str
    candidate: str  # may differ from the one asked for when a retrain produced a better one


class ModelBuilder(Protocol):
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
