"""The shipped desired state, read once per module for the planner's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec.loader import DesiredState, load_desired_state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def desired() -> DesiredState:
    state = load_desired_state(ROOT).state
    assert state is not None
    return state
