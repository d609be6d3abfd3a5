from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.spec.durations import duration_seconds
from reconciler.spec.model import JobResources, Rollout, Training, TrainingMethod


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1h30m", 5400), ("7d", 604800), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


def test_bad_duration_raises() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("soon")


def test_rollout_defaults_are_a_valid_ramp() -> None:
    assert Rollout().steps == [10, 25, 50, 75, 100]


def test_training_needs_data_unless_method_none() -> None:
    assert Training().method is TrainingMethod.NONE
    with pytest.raises(ValidationError, match="training needs data"):
        Training(method=TrainingMethod.LORA)


def test_lora_settings_with_full_method_are_refused() -> None:
    with pytest.raises(ValidationError, match="lora settings are given"):
        Training.model_validate({"method": "full", "lora": {"r": 4}, "data": {"initial": "x"}})


def test_models_are_frozen() -> None:
    rollout = Rollout()
    with pytest.raises(ValidationError):
        rollout.bake_time = "1m"  # type: ignore[misc]


def test_job_resources_follow_rays_rules() -> None:
    assert JobResources() == JobResources(cpus=1, gpus=0)
    assert JobResources.model_validate({"cpus": 0.5, "gpus": 0.25, "memoryGiB": 1.5}).memory_gib
    with pytest.raises(ValidationError, match="gpus above 1 must be a whole number"):
        JobResources.model_validate({"gpus": 1.5})
    with pytest.raises(ValidationError, match="greater than 0"):
        JobResources.model_validate({"cpus": 0})
    with pytest.raises(ValidationError, match="Extra inputs"):
        JobResources.model_validate({"memory": 4})
