"""Training and evaluating one use case by hand, without a plan or a rollout.

What `reconciler train NAME` and `reconciler evaluate NAME` do: the same idempotent steps the
apply engine takes (register the base, train for the target key, evaluate a candidate against
a champion), against the MLflow store of the environment. Nothing here moves an alias or
touches traffic; the registry tags (key, evaluation verdict) are the same ones `plan` reads,
so a later plan picks up what was made here instead of doing it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler import lineage
from reconciler.errors import ReconcilerError
from reconciler.evaluation.result import EvaluationResult
from reconciler.settings import Settings, redact_uri
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.model import UseCase
from reconciler.tracking.mlflow_tracking import Tracking

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    repo: Path
    desired: DesiredState
    use_case: UseCase
    identity: UseCaseIdentity

    @property
    def registered_model(self) -> str:
        return self.use_case.spec.registered_model


@dataclass(frozen=True)
class TrainedVersion:
    base_version: str
    version: str
    run_id: str
    model_name: str
    reused: bool  # True when a version already existed for the key and nothing was trained


def load_target(repo: Path, name: str, *, on_diagnostic: Echo) -> Target:
    """The use case `name` of the desired state in `repo`; every problem as a ReconcilerError."""
    repo = repo.resolve()
    loaded = load_desired_state(repo)
    if loaded.state is None:
        for diagnostic in loaded.diagnostics:
            on_diagnostic(diagnostic.render())
        raise ReconcilerError(
            f"{len(loaded.diagnostics)} error(s) in the desired state; nothing was done"
        )
    desired = loaded.state
    try:
        use_case = desired.use_case(name)
    except KeyError:
        known = ", ".join(u.name for u in desired.use_cases) or "none"
        raise ReconcilerError(f"no use case named {name!r} in {repo} (known: {known})") from None
    return Target(repo, desired, use_case, desired.identities[name])


def train_use_case(target: Target, settings: Settings, *, progress: bool = True) -> TrainedVersion:
    """Register the base when missing, then train for the target key (or find that version)."""
    from reconciler.training.lineage_tags import MODEL_NAME, TRAINING_RUN, use_case_model_name
    from reconciler.training.pipeline import TRAINING_ATTEMPT, TrainingError, train
    from reconciler.training.registration import register_base
    from reconciler.training.request_log_source import RequestLogSource

    use_case, identity = target.use_case, target.identity
    if not identity.trains:
        raise TrainingError(
            f"use case {use_case.name} asks for no training (spec.training.method: none); "
            f"evaluate its model with `reconciler evaluate {use_case.name}`"
        )
    tracking = Tracking(settings)
    name = target.registered_model
    base = register_base(
        use_case, identity, target.desired, repo=target.repo, settings=settings, tracking=tracking
    )
    # The version `train` returns for attempt 1, when one exists: told apart to say so.
    before = tracking.find_version(name, {lineage.KEY: identity.target_key, TRAINING_ATTEMPT: "1"})
    version = train(
        use_case,
        identity,
        target.desired,
        repo=target.repo,
        settings=settings,
        base_version=base,
        logs=RequestLogSource.for_settings(settings),
        progress=progress,
        tracking=tracking,
    )
    tags = tracking.get_version(name, version).tags
    return TrainedVersion(
        base_version=base,
        version=version,
        run_id=tags.get(TRAINING_RUN, ""),
        model_name=tags.get(MODEL_NAME, use_case_model_name(use_case)),
        reused=before is not None and before.version == version,
    )


@dataclass(frozen=True)
class Evaluated:
    result: EvaluationResult
    registered_base: str | None  # the base version registered to be the candidate, if any


def evaluate_use_case(
    target: Target,
    settings: Settings,
    *,
    candidate: str | None,
    champion: str | None,
) -> Evaluated:
    """Evaluate `candidate` (default: the version with the target key) against `champion`
    (default: the `champion` alias, if any); records the verdict on the candidate."""
    from reconciler.evaluation.gate import evaluate
    from reconciler.registry.mlflow_registry import MlflowRegistry
    from reconciler.training.registration import register_base
    from reconciler.training.request_log_source import RequestLogSource

    use_case, identity = target.use_case, target.identity
    name = target.registered_model
    tracking = Tracking(settings)
    model = MlflowRegistry(settings.tracking_uri, settings.registry_uri).snapshot([name])[name]
    for label, number in (("candidate", candidate), ("champion", champion)):
        if number is None:
            continue
        found = model.version(number) if model is not None else None
        if found is None or not found.ready:
            raise ReconcilerError(
                f"--{label} {number}: {name} has no ready version {number} in "
                f"{redact_uri(settings.registry_uri)}"
            )
    registered_base = None
    if candidate is None:
        found = model.find_by_key(identity.target_key) if model is not None else None
        if found is not None:
            candidate = found.version
        elif identity.trains:
            raise ReconcilerError(
                f"no version of {name} was trained for the current desired state "
                f"(key {identity.target_key.removeprefix('sha256:')[:12]}); run "
                f"`reconciler train {use_case.name}` first, or name one with --candidate"
            )
        else:
            # Nothing to train: the candidate is the base itself, registered as apply would.
            candidate = register_base(
                use_case,
                identity,
                target.desired,
                repo=target.repo,
                settings=settings,
                tracking=tracking,
            )
            registered_base = candidate
    if champion is None and model is not None:
        champion = model.aliases.get(lineage.Alias.CHAMPION.value)
    result = evaluate(
        use_case,
        identity,
        target.desired,
        repo=target.repo,
        settings=settings,
        candidate_version=candidate,
        champion_version=champion,
        logs=RequestLogSource.for_settings(settings),
        tracking=tracking,
    )
    return Evaluated(result, registered_base)


def where_to_look(
    settings: Settings, *, experiment: str, run_id: str, registered_model: str, version: str
) -> list[str]:
    """Lines telling where the run and the version are in MLflow: UI links for a server, the
    `mlflow ui` command for a local store."""
    tracking_uri = settings.tracking_uri.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        experiment_id = Tracking(settings).experiment_id(experiment)
        base = redact_uri(tracking_uri)
        return [
            f"Run:     {base}/#/experiments/{experiment_id}/runs/{run_id}",
            f"Version: {base}/#/models/{registered_model}/versions/{version}",
        ]
    return [
        f"Browse it with: mlflow ui --backend-store-uri {redact_uri(settings.tracking_uri)}",
        f"  experiment {experiment}, run {run_id}; registered model {registered_model}, "
        f"version {version} (models:/{registered_model}/{version})",
    ]
