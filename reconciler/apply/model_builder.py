"""The `ModelBuilder` the apply engine uses: training and evaluation over MLflow + transformers.

Binds the repository, the desired state and the settings once, and reads historical logs from
the gateway's request log. A trained candidate is judged through `train_until_passing`, so the
spec's retrain loop (more steps, lower learning rate, up to `retrain.maxAttempts`) runs before
the verdict is final; an external or untrained candidate is judged as it is.

Use cases are applied in parallel, but their model work is not: training and evaluation are
compute-bound, two at once on the same cores only make both slower, and a process holds one
accelerator. So one builder call runs at a time per process (`_MODEL_WORK`), while other use
cases go on baking their rollouts.
"""

from __future__ import annotations

import threading
from pathlib import Path

from reconciler import lineage
from reconciler.apply.ports import EvaluationOutcome
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.registry.interface import Registry
from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase
from reconciler.training.logs import LogSource

_MODEL_WORK = threading.Lock()


class MlflowModelBuilder:
    def __init__(
        self,
        *,
        repo: Path,
        desired: DesiredState,
        settings: Settings,
        registry: Registry,
    ) -> None:
        self.repo = repo
        self.desired = desired
        self.settings = settings
        self.registry = registry

    def _logs(self) -> LogSource:
        from reconciler.training.request_log_source import RequestLogSource

        return RequestLogSource.for_settings(self.settings)

    def register_base(self, use_case: UseCase, identity: UseCaseIdentity) -> str:
        from reconciler.training.registration import register_base

        with _MODEL_WORK:
            return register_base(
                use_case, identity, self.desired, repo=self.repo, settings=self.settings
            )

    def train(self, use_case: UseCase, identity: UseCaseIdentity, base_version: str) -> str:
        from reconciler.training.pipeline import train

        with _MODEL_WORK:
            return train(
                use_case,
                identity,
                self.desired,
                repo=self.repo,
                settings=self.settings,
                base_version=base_version,
                logs=self._logs(),
            )

    def evaluate(
        self,
        use_case: UseCase,
        identity: UseCaseIdentity,
        candidate: str,
        champion: str | None,
    ) -> EvaluationOutcome:
        with _MODEL_WORK:
            try:
                return self._evaluate(use_case, identity, candidate, champion)
            except TemporaryError as exc:
                # No verdict: the evaluation could not finish (a provider down, MLflow away).
                # Recorded as such, so status says why, and tried again later - unlike a
                # failed verdict, which is final for this desired state.
                self.registry.set_version_tag(
                    use_case.spec.registered_model,
                    candidate,
                    lineage.EVALUATION_VERDICT,
                    lineage.Verdict.INCOMPLETE.value,
                )
                for tag, value in (
                    (lineage.EVALUATION_DIGEST, identity.digest),
                    (lineage.EVALUATION_REASON, f"could not complete: {exc}"[:500]),
                ):
                    self.registry.set_version_tag(
                        use_case.spec.registered_model, candidate, tag, value
                    )
                raise

    def _evaluate(
        self,
        use_case: UseCase,
        identity: UseCaseIdentity,
        candidate: str,
        champion: str | None,
    ) -> EvaluationOutcome:
        if identity.trains:
            from reconciler.candidates.retrain import train_until_passing

            base = self._base_version(use_case, identity)
            outcome = train_until_passing(
                use_case,
                identity,
                self.desired,
                repo=self.repo,
                settings=self.settings,
                base_version=base,
                champion_version=champion,
                logs=self._logs(),
            )
            return EvaluationOutcome(
                passed=outcome.verdict is lineage.Verdict.PASSED,
                reason=outcome.reason,
                candidate=outcome.version,
            )
        from reconciler.evaluation.gate import evaluate

        result = evaluate(
            use_case,
            identity,
            self.desired,
            repo=self.repo,
            settings=self.settings,
            candidate_version=candidate,
            champion_version=champion,
            logs=self._logs(),
        )
        return EvaluationOutcome(passed=result.passed, reason=result.reason, candidate=candidate)

    def _base_version(self, use_case: UseCase, identity: UseCaseIdentity) -> str:
        name = use_case.spec.registered_model
        model = self.registry.snapshot([name])[name]
        base = model.find_by_key(identity.base_key) if model else None
        if base is None:
            raise ReconcilerError(f"the base version of {name} is missing; plan again")
        return base.version
