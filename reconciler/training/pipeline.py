"""Training a use case's copy of its base model.

`train` is idempotent on the identity's target key: a READY version tagged with it is
returned as is. Otherwise the base version's weights are fine-tuned (LoRA or full) on the
initial data plus well-rated historical logs, inside one MLflow run that holds the datasets
as inputs, the per-step losses, the merged model and, for LoRA, the adapter; the model is
registered as a new version with its lineage tags. The loop that retrains when evaluation
fails lives above both training and evaluation, in `reconciler.candidates.retrain`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler import lineage
from reconciler.errors import ReconcilerError
from reconciler.model_loading import load_causal_lm
from reconciler.registry.version_files import locate_model_folders
from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import Hyperparameters, TrainingMethod, UseCase
from reconciler.tracking.mlflow_tracking import DatasetTable, Tracking
from reconciler.training.base_models import version_files
from reconciler.training.datasets import training_data
from reconciler.training.examples import Dataset
from reconciler.training.fine_tune import FineTuneSettings, fine_tune
from reconciler.training.lineage_tags import (
    MODEL_NAME,
    TRAINING_RUN,
    base_tags,
    dataset_digest_tag,
    inference_params,
    pip_requirements,
    use_case_model_name,
)
from reconciler.training.logs import LogSource
from reconciler.training.registration import ROLE_EXTERNAL

ROLE_TRAINED = "trained"
TRAINING_ATTEMPT = "reconciler.training.attempt"
ADAPTER_ARTIFACT = "lora-adapter"


class TrainingError(ReconcilerError):
    """The use case cannot be trained as asked (external base, no method, no data)."""


def attempt_hyperparameters(base: Hyperparameters, attempt: int) -> Hyperparameters:
    """Attempt n trains 2^(n-1) times longer at half the learning rate per extra attempt."""
    if attempt <= 1:
        return base
    factor = 2 ** (attempt - 1)
    return base.model_copy(
        update={
            "epochs": min(base.epochs * factor, 100),
            "max_steps": base.max_steps * factor if base.max_steps is not None else None,
            "learning_rate": base.learning_rate / factor,
        }
    )


def train(
    use_case: UseCase,
    identity: UseCaseIdentity,
    desired: DesiredState,
    *,
    repo: Path,
    settings: Settings,
    base_version: str,
    logs: LogSource | None = None,
    progress: bool = True,
    attempt: int = 1,
    tracking: Tracking | None = None,
) -> str:
    """The number of the version trained for `identity.target_key`, training it if missing."""
    tracking = tracking or Tracking(settings)
    spec = use_case.spec
    name = spec.registered_model
    # Key AND attempt: every attempt is a version with the same key, and the newest by key alone
    # would hand attempt 1 the version attempt 2 made.
    existing = tracking.find_version(
        name, {lineage.KEY: identity.target_key, TRAINING_ATTEMPT: str(attempt)}
    )
    if existing is not None:
        return existing.version
    method = spec.training.method
    if method is TrainingMethod.NONE or not identity.trains:
        raise TrainingError(f"use case {use_case.name} asks for no training (method: none)")
    base = tracking.get_version(name, base_version)
    if base.tags.get(lineage.ROLE) == ROLE_EXTERNAL:
        raise TrainingError(f"version {base_version} of {name} is an external model: never trained")

    data = training_data(use_case, datasets=desired.dataset_contents, logs=logs)
    hyperparameters = attempt_hyperparameters(spec.training.hyperparameters, attempt)
    model_name = use_case_model_name(use_case)
    tags = {
        lineage.KEY: identity.target_key,
        lineage.ROLE: ROLE_TRAINED,
        **base_tags(use_case, identity, desired),
        MODEL_NAME: model_name,
        TRAINING_ATTEMPT: str(attempt),
        **{dataset_digest_tag(n): d for n, d in data.digests.items()},
    }
    run_tags = {**tags, "reconciler.base_version": base_version}
    with tracking.run(use_case.name, f"train-{method.value}-attempt-{attempt}", run_tags) as run:
        run.log_params(
            {
                "method": method.value,
                "base_version": base_version,
                "attempt": attempt,
                **hyperparameters.model_dump(),
                **(
                    {f"lora_{k}": v for k, v in spec.training.lora_settings.model_dump().items()}
                    if method is TrainingMethod.LORA
                    else {}
                ),
                **{f"examples_{d.name}": len(d.examples) for d in data.datasets()},
            }
        )
        for dataset in data.datasets():
            if dataset.examples:
                source = (
                    (repo / spec.training.data.initial).resolve()
                    if dataset.name == "initial" and spec.training.data.initial
                    else None
                )
                run.log_dataset(dataset_table(dataset, use_case.name, source), context=dataset.name)
        folders = locate_model_folders(version_files(base, settings))
        model, tokenizer = load_causal_lm(folders.weights, folders.tokenizer)
        result = fine_tune(
            model,
            tokenizer,
            data.train.examples,
            data.validation.examples,
            FineTuneSettings(method, hyperparameters, spec.training.lora_settings),
            on_metrics=lambda step, metrics: run.log_metrics(metrics, step=step),
            progress=progress,
        )
        run.log_metrics(
            {
                "initial_validation_loss": result.initial_validation_loss,
                "best_validation_loss": result.best_validation_loss,
                "trained_steps": float(result.steps),
                "tokens_per_second": result.tokens_per_second,
                "stopped_early": float(result.stopped_early),
            }
        )
        if result.adapter_dir is not None:
            run.log_folder(result.adapter_dir, ADAPTER_ARTIFACT)
            shutil.rmtree(result.adapter_dir, ignore_errors=True)
        model_uri = run.log_transformers_model(
            result.model,
            result.tokenizer,
            inference_params=inference_params(spec.generation),
            pip_requirements=pip_requirements(),
            name=model_name,
        )
        description = (
            f"{model_name}: a use-case copy of {spec.preferred_model.reference} "
            f"(version {base_version}) fine-tuned with {method.value} on "
            f"{len(data.train.examples)} examples, attempt {attempt}."
        )
        registered = tracking.register(
            name,
            model_uri=model_uri,
            run_id=run.run_id,
            tags={**tags, TRAINING_RUN: run.run_id},
            description=description,
        )
    return registered.version


def dataset_table(dataset: Dataset, use_case: str, source: Path | None = None) -> DatasetTable:
    return DatasetTable(
        name=f"{use_case}-{dataset.name}",
        digest=dataset.digest.removeprefix("sha256:"),
        rows=dataset.rows(),
        source=str(source) if source is not None else None,
    )
