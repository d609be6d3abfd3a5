from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import PlanFileError
from reconciler.observe.state import ObservedState
from reconciler.plan import planfile
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.spec.loader import load_desired_state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plan() -> Plan:
    state = load_desired_state(ROOT).state
    assert state is not None
    return diff(state, ObservedState(registry={}, traffic={}))


def test_round_trip(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    planfile.save(plan, path)
    assert planfile.load(path) == plan
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("version", [3, "2"])
def test_unknown_format_version_is_refused(plan: Plan, version: object) -> None:
    document = planfile.plan_to_json(plan)
    document["format_version"] = version
    with pytest.raises(PlanFileError, match="plan format"):
        planfile.loads(json.dumps(document))


def test_a_version_1_plan_is_refused_with_a_message_to_plan_again(plan: Plan) -> None:
    document = planfile.plan_to_json(plan)
    document["format_version"] = 1
    with pytest.raises(PlanFileError, match=r"plan format 1.*reconciler plan"):
        planfile.loads(json.dumps(document))


def test_every_change_round_trips_with_its_typed_payload(plan: Plan) -> None:
    again = planfile.loads(planfile.dumps(plan))
    assert [type(c) for c in again.changes] == [type(c) for c in plan.changes]
    assert again.changes == plan.changes


def test_a_payload_of_the_wrong_shape_for_its_action_is_corrupt(plan: Plan) -> None:
    document = planfile.plan_to_json(plan)
    register = next(c for c in document["changes"] if c["action"] == "register")
    register["after"] = {"routes": []}
    document.pop("summary")
    with pytest.raises(PlanFileError, match="corrupt"):
        planfile.loads(json.dumps(document))


def test_summary_that_disagrees_with_changes_is_corrupt(plan: Plan) -> None:
    document = planfile.plan_to_json(plan)
    document["changes"] = document["changes"][1:]
    with pytest.raises(PlanFileError, match="summary does not match"):
        planfile.loads(json.dumps(document))


def test_unknown_action_is_corrupt(plan: Plan) -> None:
    document = planfile.plan_to_json(plan)
    document["changes"][0]["action"] = "delete-everything"
    document.pop("summary")
    with pytest.raises(PlanFileError, match="corrupt"):
        planfile.loads(json.dumps(document))


@pytest.mark.parametrize("text", ["", "[]", "{}", "not json"])
def test_not_a_plan(text: str) -> None:
    with pytest.raises(PlanFileError, match="not a plan file"):
        planfile.loads(text)
