"""The pure planner: a table of observed situations and the changes each must produce."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.lineage import Alias
from reconciler.observe.state import ObservedState, Route, TrafficSnapshot
from reconciler.plan.diff import diff, observed_serial
from reconciler.plan.model import (
    NEW_BASE,
    NEW_VERSION,
    EvaluateChange,
    PromoteChange,
    ReasonCode,
    RegisterChange,
    RollbackChange,
    RouteRef,
    ShiftChange,
    TrainChange,
)
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import TrainingMethod
from tests.plan.worlds import (
    FACTION,
    NPC,
    STORY,
    World,
    actions,
    champion_deleted,
    champion_moved_by_hand,
    converged,
    evaluated_for_older_desired_state,
    failed_evaluation,
    in_rollout,
    new_candidate_after_converged,
    plan_for,
    previous_moved_by_hand,
    rejected_not_serving,
    rejected_still_serving,
    weights_edited_by_hand,
)

CASES: list[tuple[str, str, Callable[[World], World] | None, list[str]]] = [
    (
        "nothing exists: the base serves first, the candidate canaries",
        NPC,
        None,
        ["register", "promote", "shift", "train", "evaluate", "shift", "promote"],
    ),
    ("external model is never trained", STORY, None, ["register", "evaluate", "promote", "shift"]),
    (
        "base registered",
        NPC,
        lambda w: w.base(),
        ["promote", "shift", "train", "evaluate", "shift", "promote"],
    ),
    (
        "trained",
        NPC,
        lambda w: w.base().target("2"),
        ["promote", "shift", "evaluate", "shift", "promote"],
    ),
    ("converged", NPC, converged, ["noop"]),
    (
        "evaluated for older desired state",
        NPC,
        evaluated_for_older_desired_state,
        ["promote", "shift", "evaluate", "shift", "promote"],
    ),
    (
        "failed evaluation: the base keeps serving",
        NPC,
        failed_evaluation,
        ["promote", "shift", "noop"],
    ),
    ("new candidate canaries", NPC, new_candidate_after_converged, ["shift", "promote"]),
    ("rollout in progress resumes", NPC, in_rollout, ["shift", "promote"]),
    ("champion moved by hand", NPC, champion_moved_by_hand, ["promote!"]),
    ("weights edited by hand", NPC, weights_edited_by_hand, ["shift!"]),
    ("previous moved by hand", NPC, previous_moved_by_hand, ["promote!"]),
    ("rejected candidate not retried", NPC, rejected_not_serving, ["noop"]),
    ("rejected candidate still serving", NPC, rejected_still_serving, ["rollback"]),
    (
        "champion alias names a deleted version",
        NPC,
        champion_deleted,
        ["promote", "shift", "shift", "promote"],
    ),
]


@pytest.mark.parametrize(
    ("title", "use_case", "build", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_plan_table(
    desired: DesiredState,
    title: str,
    use_case: str,
    build: Callable[[World], World] | None,
    expected: list[str],
) -> None:
    assert actions(plan_for(desired, use_case, build)) == expected


def test_fresh_pipeline_details(desired: DesiredState) -> None:
    plan = plan_for(desired, NPC, None)
    register, serve_base, route_base, train, evaluate, canary, promote = plan.changes
    identity = desired.identities[NPC]
    assert isinstance(register, RegisterChange) and register.before is None
    assert register.after.key == identity.base_key and register.after.role == "base"
    assert register.code is ReasonCode.NEW_REGISTERED_MODEL
    assert isinstance(serve_base, PromoteChange)
    assert serve_base.after.aliases == {Alias.CHAMPION: NEW_BASE, Alias.CHALLENGER: None}
    assert not serve_base.after.requires_analysis
    assert serve_base.code is ReasonCode.BASE_SERVES_FIRST
    assert isinstance(route_base, ShiftChange) and route_base.after.rollout is None
    assert route_base.after.routes == [RouteRef(version=NEW_BASE, weight=100)]
    assert isinstance(train, TrainChange) and train.after.key == identity.target_key
    assert train.after.method is TrainingMethod.LORA and train.after.base_version == NEW_BASE
    assert isinstance(evaluate, EvaluateChange) and evaluate.after.baseline == NEW_BASE
    assert isinstance(canary, ShiftChange) and canary.code is ReasonCode.ROLLOUT
    assert canary.before.routes == [RouteRef(version=NEW_BASE, weight=100)]
    assert canary.before.aliases == {Alias.CHAMPION: NEW_BASE, Alias.CHALLENGER: None}
    assert canary.after.rollout is not None
    assert canary.after.rollout.steps == [10, 25, 50, 75, 100]
    assert (canary.after.rollout.candidate, canary.after.rollout.champion) == (
        NEW_VERSION,
        NEW_BASE,
    )
    assert isinstance(promote, PromoteChange) and promote.after.requires_analysis
    assert promote.after.aliases == {
        Alias.CHAMPION: NEW_VERSION,
        Alias.CHALLENGER: None,
        Alias.PREVIOUS: NEW_BASE,
    }


def test_external_model_is_promoted_directly(desired: DesiredState) -> None:
    _, evaluate, promote, shift = plan_for(desired, STORY, None).changes
    assert isinstance(evaluate, EvaluateChange) and evaluate.after.baseline is None
    assert "absolute thresholds only" in evaluate.reason
    assert isinstance(promote, PromoteChange) and promote.code is ReasonCode.FIRST_CHAMPION
    assert promote.after.aliases == {Alias.CHAMPION: NEW_VERSION, Alias.CHALLENGER: None}
    assert isinstance(shift, ShiftChange)
    assert shift.after.routes == [RouteRef(version=NEW_VERSION, weight=100)]


def test_canary_uses_the_spec_steps_and_resumes_from_current_weight(desired: DesiredState) -> None:
    fresh = plan_for(desired, NPC, new_candidate_after_converged)
    shift = fresh.changes[0]
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.steps == [10, 25, 50, 75, 100]
    assert shift.after.rollout.candidate == "8" and not shift.after.rollout.shadow
    resumed = plan_for(desired, NPC, in_rollout).changes[0]
    # The canary stands at 25%; whether that step's analysis passed is the journal's to say,
    # not the plan's, so it is listed again (the rollout machine knows whether it passed).
    assert isinstance(resumed, ShiftChange) and resumed.after.rollout is not None
    assert resumed.after.rollout.steps == [25, 50, 75, 100]
    assert "resuming at 25%" in resumed.reason and resumed.code is ReasonCode.ROLLOUT_RESUME
    promote = plan_for(desired, NPC, in_rollout).changes[1]
    assert isinstance(promote, PromoteChange)
    assert promote.after.aliases == {
        Alias.CHAMPION: "3",
        Alias.CHALLENGER: None,
        Alias.PREVIOUS: "2",
    }
    # A change's `before` is what it expects after the earlier changes of the same plan.
    assert promote.before.aliases == {
        Alias.CHAMPION: "2",
        Alias.CHALLENGER: "3",
        Alias.PREVIOUS: None,
    }


def test_rollback_restores_the_champion(desired: DesiredState) -> None:
    (rollback,) = plan_for(desired, NPC, rejected_still_serving).changes
    assert isinstance(rollback, RollbackChange)
    assert rollback.after.aliases == {Alias.CHAMPION: "2", Alias.CHALLENGER: None}
    assert rollback.after.routes == [RouteRef(version="2", weight=100)]
    assert rollback.after.rejected == "3"
    assert "errorRate 0.2 > 0.01" in rollback.reason


def test_drift_is_reported_with_self_heal_off(desired: DesiredState) -> None:
    (faction,) = plan_for(desired, FACTION, weights_edited_by_hand).changes
    assert faction.drift is True
    assert "selfHeal is off" in faction.reason
    (npc,) = plan_for(desired, NPC, weights_edited_by_hand).changes
    assert npc.drift is True and "selfHeal is off" not in npc.reason


def test_plan_is_deterministic(desired: DesiredState) -> None:
    assert plan_for(desired, NPC, in_rollout) == plan_for(desired, NPC, in_rollout)


def test_a_plan_of_some_use_cases_goes_stale_only_when_they_change(
    desired: DesiredState,
) -> None:
    # The demo and `apply --only` run use cases side by side: one promoting must not make
    # another's fresh plan stale, while a change to the planned use case's own traffic must.
    npc_model = desired.use_case(NPC).spec.registered_model
    before = ObservedState(registry={}, traffic={})
    plan = diff(desired, before, only=[NPC])
    other_moved = ObservedState(registry={}, traffic={FACTION: TrafficSnapshot((Route("2", 100),))})
    own_moved = ObservedState(registry={}, traffic={NPC: TrafficSnapshot((Route("2", 100),))})
    assert plan.observed_serial == observed_serial(desired, other_moved, [NPC])
    assert plan.observed_serial != observed_serial(desired, own_moved, [NPC])
    assert npc_model not in {desired.use_case(FACTION).spec.registered_model}
    # A plan of every use case is stale when anything observed changed.
    whole = diff(desired, before)
    assert whole.observed_serial == before.serial
    every = [u.name for u in desired.use_cases]
    assert whole.observed_serial != observed_serial(desired, other_moved, every)


def test_plan_records_source_and_observed_serial(desired: DesiredState) -> None:
    empty = diff(desired, ObservedState(registry={}, traffic={}))
    other = diff(
        desired,
        ObservedState(registry={}, traffic={NPC: TrafficSnapshot((Route("1", 100),))}),
    )
    assert empty.source.digest == desired.source.digest
    assert empty.observed_serial != other.observed_serial
    assert {c.use_case for c in empty.changes} == {NPC, FACTION, STORY}
