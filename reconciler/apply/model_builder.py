"""The `ModelBuilder` the apply engine uses: training and evaluation over MLflow + transformers,
run as jobs by a job runner (in this process by default, or on Ray).

Binds the repository, the desired state and the settings once; each call becomes a job
(`model_jobs.py`) of plain values, keyed by the version it makes, handed to the runner. A
trained candidate is judged through `train_until_passing`, so the spec's retrain loop (more
steps, lower learning rate, up to `retrain.maxAttempts`) runs before the verdict is final; an
external or untrained candidate is judged as it is. How many jobs run at once is the runner's
business: one per process in this process, as many as the cluster has room for on Ray.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

from reconciler import lineage
from reconciler.apply.model_jobs import EvaluateJob, ModelWork, RegisterBaseJob, TrainJob
from reconciler.apply.ports import EvaluationOutcome
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.jobs.interface import Job, JobRunner
from reconciler.jobs.local import LocalJobRunner
from reconciler.registry.interface import Registry
from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase

log = logging.getLogger(__name__)

T = TypeVar("T")


class MlflowModelBuilder:
    def __init__(
        self,
        *,
        repo: Path,
        desired: DesiredState,
        settings: Settings,
        registry: Registry,
        jobs: JobRunner | None = None,
    ) -> None:
        self.repo = repo
        self.desired = desired
        self.settings = settings
        self.registry = registry
        self.jobs: JobRunner = jobs or LocalJobRunner()

    def _work(self, use_case: UseCase, identity: UseCaseIdentity) -> ModelWork:
        return ModelWork.of(
            repo=self.repo,
            desired=self.desired,
            settings=self.settings,
            use_case=use_case,
            identity=identity,
        )

    def _run(self, job: Job[T]) -> T:
        result = self.jobs.run(job)
        log.info("%s ran %s", job.name, result.placement.describe())
        return result.value

    def register_base(self, use_case: UseCase, identity: UseCaseIdentity) -> str:
        return self._run(RegisterBaseJob(self._work(use_case, identity)))

    def train(self, use_case: UseCase, identity: UseCaseIdentity, base_version: str) -> str:
        return self._run(TrainJob(self._work(use_case, identity), base_version))

    def evaluate(
        self,
        use_case: UseCase,
        identity: UseCaseIdentity,
        candidate: str,
        champion: str | None,
    ) -> EvaluationOutcome:
        try:
            base = self._base_version(use_case, identity) if identity.trains else None
            return self._run(EvaluateJob(self._work(use_case, identity), candidate, champion, base))
        except TemporaryError as exc:
            # No verdict: the evaluation could not finish (a provider down, MLflow away, the
            # job lost or out of time). Recorded as such, so status says why, and tried
            # again later - unlike a failed verdict, which is final for this desired state.
            self.registry.set_version_tag(
                use_case.spec.registered_model,
                candidate,
                lineage.EVALUATION_VERDICT,
                lineage.EvaluationVerdict.INCOMPLETE.value,
            )
            for tag, value in (
                (lineage.EVALUATION_DIGEST, identity.digest),
                (lineage.EVALUATION_REASON, f"could not complete: {exc}"[:500]),
                # No outputs were judged: an earlier evaluation's findings no longer apply.
                (lineage.EVALUATION_SAFETY_CATEGORIES, ""),
                (lineage.EVALUATION_SAFETY_FINDINGS, "[]"),
            ):
                self.registry.set_version_tag(use_case.spec.registered_model, candidate, tag, value)
            raise

    def _base_version(self, use_case: UseCase, identity: UseCaseIdentity) -> str:
        name = use_case.spec.registered_model
        model = self.registry.snapshot([name])[name]
        base = model.find_by_key(identity.base_key) if model else None
        if base is None:
            raise ReconcilerError(f"the base version of {name} is missing; plan again")
        return base.version
