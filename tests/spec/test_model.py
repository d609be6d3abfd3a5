from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.spec.durations import duration_seconds
from reconciler.spec.model import Rollout, Training, TrainingMethod


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
