"""Assembling a use case's training data from its initial JSONL and historical logs."""

from __future__ import annotations

import time
from collections.abc import Mapping

from reconciler.spec.durations import duration_seconds
from reconciler.spec.model import UseCase
from reconciler.training.examples import (
    Example,
    QualityFilter,
    TrainingData,
    build_training_data,
    examples_from_logs,
    initial_examples,
)
from reconciler.training.logs import LogSource


def training_data(
    use_case: UseCase,
    *,
    datasets: Mapping[str, bytes],
    logs: LogSource | None,
    now: float | None = None,
) -> TrainingData:
    """`datasets`: the contents of the desired state's datasets, by repository path, as
    loaded with it (`DesiredState.dataset_contents`), so training reads the planned commit."""
    spec = use_case.spec
    data = spec.training.data
    system_prompt = spec.generation.system_prompt
    initial: list[Example] = []
    if data.initial:
        initial = initial_examples(
            datasets[data.initial], path=data.initial, system_prompt=system_prompt
        )
    historical: list[Example] = []
    if data.historical_logs is not None and logs is not None:
        since = (time.time() if now is None else now) - duration_seconds(data.historical_logs.since)
        historical = examples_from_logs(
            logs.exchanges(use_case.name, since=since),
            QualityFilter(min_rating=data.historical_logs.min_quality),
            default_system_prompt=system_prompt,
            max_examples=data.historical_logs.max_examples,
        )
    hp = spec.training.hyperparameters
    return build_training_data(
        initial, historical, validation_fraction=hp.validation_fraction, seed=hp.seed
    )
