"""Model work as jobs: register a base, train, evaluate - plain values any job runner can ship.

A job names the desired state it was made from by repository path, commit and digest, never
by the loaded object, and holds no client: on a Ray worker it reads the desired state again,
from the same commit, and refuses to work when the digest differs (a working tree edited
since the plan), so a job never trains on something nobody planned. In this process the
loaded state travels along and nothing is read twice. Each job is idempotent on its key, the
key of the version it makes: the training pipeline and registration find an existing version
by key (and attempt) before making one, so a job resubmitted after a crash finds its version.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import lineage
from reconciler.apply.ports import EvaluationOutcome
from reconciler.errors import ReconcilerError
from reconciler.jobs.interface import GIB, ResourceRequest
from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.model import UseCase

if TYPE_CHECKING:
    from reconciler.training.logs import LogSource


class DesiredStateChangedError(ReconcilerError):
    """The desired state a job reads is not the one its plan was made from."""


def resource_request(use_case: UseCase) -> ResourceRequest:
    """What the use case's `spec.training.resources` asks each of its jobs to be given."""
    asked = use_case.spec.training.resources
    if asked is None:
        return ResourceRequest()
    memory = round(asked.memory_gib * GIB) if asked.memory_gib is not None else None
    return ResourceRequest(cpus=asked.cpus, gpus=asked.gpus, memory_bytes=memory)


@dataclass(frozen=True)
class ModelWork:
    """What every model job shares: which desired state, which use case, where MLflow is."""

    repo: str  # absolute: a worker's working directory is not ours
    ref: str | None  # the commit; None for a working tree (then the digest decides)
    digest: str
    use_case: str
    identity: UseCaseIdentity
    settings: Settings
    resources: ResourceRequest
    # In this process only: the loaded desired state, never pickled (it is re-read there).
    loaded: DesiredState | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        *,
        repo: Path,
        desired: DesiredState,
        settings: Settings,
        use_case: UseCase,
        identity: UseCaseIdentity,
    ) -> ModelWork:
        source = desired.source
        return cls(
            repo=str(repo.resolve()),
            ref=source.commit if source.commit and not source.dirty else None,
            digest=source.digest,
            use_case=use_case.name,
            identity=identity,
            # A job needs MLflow and the state folder, never the gateway's admin token.
            settings=replace(settings, gateway_token=None),
            resources=resource_request(use_case),
            loaded=desired,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "loaded": None}

    def open(self) -> tuple[DesiredState, UseCase]:
        desired = self.loaded or self._read()
        return desired, desired.use_case(self.use_case)

    def _read(self) -> DesiredState:
        where = f"{self.repo} at {self.ref}" if self.ref else f"the working tree {self.repo}"
        result = load_desired_state(Path(self.repo), self.ref)
        if result.state is None:
            first = result.diagnostics[0].render() if result.diagnostics else "no details"
            raise DesiredStateChangedError(
                f"the desired state in {where} no longer loads ({first}); plan again"
            )
        state = result.state
        if state.source.digest != self.digest or (
            state.identities.get(self.use_case) != self.identity
        ):
            raise DesiredStateChangedError(
                f"the desired state in {where} is not the one this job was planned from "
                "(it changed since); commit it and plan again"
            )
        return state

    def logs(self) -> LogSource:
        from reconciler.training.request_log_source import RequestLogSource

        return RequestLogSource.for_settings(self.settings)


@dataclass(frozen=True)
class RegisterBaseJob:
    work: ModelWork

    @property
    def name(self) -> str:
        return f"register-base {self.work.use_case}"

    @property
    def key(self) -> str:
        return self.work.identity.base_key

    @property
    def resources(self) -> ResourceRequest:
        return self.work.resources

    def __call__(self) -> str:
        from reconciler.training.registration import register_base

        desired, use_case = self.work.open()
        return register_base(
            use_case,
            self.work.identity,
            desired,
            repo=Path(self.work.repo),
            settings=self.work.settings,
        )


@dataclass(frozen=True)
class TrainJob:
    work: ModelWork
    base_version: str

    @property
    def name(self) -> str:
        return f"train {self.work.use_case}"

    @property
    def key(self) -> str:
        return self.work.identity.target_key

    @property
    def resources(self) -> ResourceRequest:
        return self.work.resources

    def __call__(self) -> str:
        from reconciler.training.pipeline import train

        desired, use_case = self.work.open()
        return train(
            use_case,
            self.work.identity,
            desired,
            repo=Path(self.work.repo),
            settings=self.work.settings,
            base_version=self.base_version,
            logs=self.work.logs(),
        )


@dataclass(frozen=True)
class EvaluateJob:
    """Judge a candidate; a trained one through the retrain loop from `base_version`."""

    work: ModelWork
    candidate: str
    champion: str | None
    base_version: str | None = None

    @property
    def name(self) -> str:
        return f"evaluate {self.work.use_case}"

    @property
    def key(self) -> str:
        return self.work.identity.target_key

    @property
    def resources(self) -> ResourceRequest:
        return self.work.resources

    def __call__(self) -> EvaluationOutcome:
        desired, use_case = self.work.open()
        identity, repo, settings = self.work.identity, Path(self.work.repo), self.work.settings
        if identity.trains:
            from reconciler.candidates.retrain import train_until_passing

            if self.base_version is None:
                raise ReconcilerError(f"evaluating {use_case.name} needs its base version")
            outcome = train_until_passing(
                use_case,
                identity,
                desired,
                repo=repo,
                settings=settings,
                base_version=self.base_version,
                champion_version=self.champion,
                logs=self.work.logs(),
            )
            return EvaluationOutcome(
                passed=outcome.verdict is lineage.EvaluationVerdict.PASSED,
                reason=outcome.reason,
                candidate=outcome.version,
            )
        from reconciler.evaluation.gate import evaluate

        result = evaluate(
            use_case,
            identity,
            desired,
            repo=repo,
            settings=settings,
            candidate_version=self.candidate,
            champion_version=self.champion,
            logs=self.work.logs(),
        )
        return EvaluationOutcome(
            passed=result.passed, reason=result.reason, candidate=self.candidate
        )
