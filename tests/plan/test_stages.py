"""Each stage of the diff on its own: a table of situations and what the stage adds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import lineage
from reconciler.lineage import Alias
from reconciler.observe.state import Route, TrafficSnapshot
from reconciler.plan import build_stages, traffic_stages
from reconciler.plan.model import NEW_VERSION, PromoteChange, ReasonCode, ShiftChange
from reconciler.plan.planned import Planned
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.model import UseCase
from tests.plan.worlds import NPC, STORY, World, converged, in_rollout

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def desired() -> DesiredState:
    state = load_desired_state(ROOT).state
    assert state is not None
    return state


def planned(
    desired: DesiredState,
    name: str,
    build: Callable[[World], World] | None = None,
    *,
    use_case: UseCase | None = None,
) -> Planned:
    identity = desired.identities[name]
    if build is None:
        return Planned(use_case or desired.use_case(name), identity, None, TrafficSnapshot())
    world = build(World(identity))
    return Planned(
        use_case or desired.use_case(name),
        identity,
        world.snapshot(name),
        TrafficSnapshot(world.routes, world.applied_routes),
    )


def codes(p: Planned) -> list[ReasonCode]:
    return [c.code for c in p.changes]


REGISTER_CASES: list[tuple[str, Callable[[World], World] | None, list[ReasonCode], bool]] = [
    ("no registered model", None, [ReasonCode.NEW_REGISTERED_MODEL], False),
    (
        "model without the base",
        lambda w: w.version("1", "sha256:other"),
        [ReasonCode.NEW_BASE_VERSION],
        False,
    ),
    ("base found by key", lambda w: w.base("4"), [], True),
]


@pytest.mark.parametrize(
    ("title", "build", "expected", "found"), REGISTER_CASES, ids=[c[0] for c in REGISTER_CASES]
)
def test_register(
    desired: DesiredState,
    title: str,
    build: Callable[[World], World] | None,
    expected: list[ReasonCode],
    found: bool,
) -> None:
    p, base = build_stages.register(planned(desired, NPC, build))
    assert codes(p) == expected
    assert (base is not None) == found


GATE_CASES: list[tuple[str, dict[str, str], list[ReasonCode], bool]] = [
    ("never evaluated", {}, [ReasonCode.NOT_EVALUATED], True),
    (
        "evaluation could not complete: evaluated again",
        {lineage.EVALUATION_VERDICT: "incomplete", lineage.EVALUATION_REASON: "provider down"},
        [ReasonCode.NOT_EVALUATED],
        True,
    ),
    (
        "verdict for an older desired state",
        {lineage.EVALUATION_VERDICT: "passed", lineage.EVALUATION_DIGEST: "sha256:old"},
        [ReasonCode.VERDICT_STALE],
        True,
    ),
    (
        "failed for this desired state",
        {lineage.EVALUATION_VERDICT: "failed"},
        [ReasonCode.EVALUATION_FAILED],
        False,
    ),
    ("passed for this desired state", {lineage.EVALUATION_VERDICT: "passed"}, [], True),
    (
        "rejected, not serving",
        {lineage.REJECTED: "errorRate 0.2 > 0.01"},
        [ReasonCode.REJECTED],
        False,
    ),
]


@pytest.mark.parametrize(
    ("title", "tags", "expected", "may_roll_out"), GATE_CASES, ids=[c[0] for c in GATE_CASES]
)
def test_gate(
    desired: DesiredState,
    title: str,
    tags: dict[str, str],
    expected: list[ReasonCode],
    may_roll_out: bool,
) -> None:
    digest = desired.identities[NPC].digest
    own = dict(tags)  # verdicts and rejections are for this desired state unless they say not
    if lineage.EVALUATION_VERDICT in own and lineage.EVALUATION_DIGEST not in own:
        own[lineage.EVALUATION_DIGEST] = digest
    if lineage.REJECTED in own:
        own[lineage.REJECTED_DIGEST] = digest

    def world(w: World) -> World:
        converged(w)
        return w.target("3", **own)

    p = planned(desired, NPC, world)
    assert p.model is not None
    candidate = p.model.version("3")
    assert candidate is not None
    p, allowed = build_stages.gate(p, candidate)
    assert codes(p) == expected
    assert allowed is may_roll_out


def test_rollout_of_a_new_candidate_is_a_shift_then_an_earned_promotion(
    desired: DesiredState,
) -> None:
    p = traffic_stages.rollout(planned(desired, NPC, lambda w: converged(w).passed("3")), "3")
    shift, _ = p.changes
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.strategy.value == "canary"
    assert codes(p) == [ReasonCode.ROLLOUT, ReasonCode.PROMOTE_AFTER_ROLLOUT]


def test_rollout_resuming_lists_the_current_step_again(desired: DesiredState) -> None:
    p = traffic_stages.rollout(planned(desired, NPC, in_rollout), "3")
    shift = p.changes[0]
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.steps == [25, 50, 75, 100] and not shift.after.rollout.shadow
    assert shift.code is ReasonCode.ROLLOUT_RESUME


def with_rollout(desired: DesiredState, name: str, **rollout: object) -> UseCase:
    use_case = desired.use_case(name)
    spec = use_case.spec.rollout.model_dump(by_alias=True, exclude_unset=True) | rollout
    if rollout.get("strategy") == "blueGreen":
        spec.pop("steps", None)
    new_spec = use_case.spec.model_copy(
        update={"rollout": type(use_case.spec.rollout).model_validate(spec)}
    )
    return use_case.model_copy(update={"spec": new_spec})


def test_a_shadow_phase_comes_first_and_appears_in_the_plan(desired: DesiredState) -> None:
    use_case = with_rollout(desired, NPC, shadow={"duration": "1h", "minRequests": 50})
    p = planned(desired, NPC, lambda w: converged(w).passed("3"), use_case=use_case)
    shift = traffic_stages.rollout(p, "3").changes[0]
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.shadow
    assert "shadow 1h → 10% → 25%" in shift.reason


def test_blue_green_plans_a_preview_then_all_at_once(desired: DesiredState) -> None:
    use_case = with_rollout(desired, NPC, strategy="blueGreen")
    p = planned(desired, NPC, lambda w: converged(w).passed("3"), use_case=use_case)
    shift = traffic_stages.rollout(p, "3").changes[0]
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.steps == [100] and shift.after.rollout.shadow
    assert "blue-green 3 against champion 2: preview on mirrored traffic" in shift.reason
    assert "2 stays loaded until the analysis passes" in shift.reason


def test_rollout_with_no_champion_promotes_directly(desired: DesiredState) -> None:
    p = traffic_stages.rollout(planned(desired, STORY), None)
    assert codes(p) == [ReasonCode.FIRST_CHAMPION, ReasonCode.ROUTE_TO_CHAMPION]
    assert p.changes[1].after is not None


def test_rollout_of_the_champion_removes_a_leftover_challenger(desired: DesiredState) -> None:
    def leftover(w: World) -> World:
        converged(w)
        w.aliases["challenger"] = "1"
        return w

    p = traffic_stages.rollout(planned(desired, NPC, leftover), "2")
    assert codes(p) == [ReasonCode.LEFTOVER_CHALLENGER]


def test_route_all_to_heals_hand_edited_weights(desired: DesiredState) -> None:
    def edited(w: World) -> World:
        converged(w)
        w.routes = (Route("1", 50), Route("2", 50))
        return w

    p = traffic_stages.route_all_to(planned(desired, NPC, edited), "2", "champion")
    assert codes(p) == [ReasonCode.DRIFT_ROUTES] and p.changes[0].drift


def test_restore_drifted_aliases_skips_aliases_a_planned_change_sets(desired: DesiredState) -> None:
    def moved(w: World) -> World:
        converged(w)
        assert w.applied is not None
        w.applied["previous"] = "1"
        return w

    p = planned(desired, NPC, moved)
    assert codes(traffic_stages.restore_drifted_aliases(p)) == [ReasonCode.DRIFT_ALIAS]
    rolled = traffic_stages.rollout(planned(desired, NPC, lambda w: moved(w).passed("3")), "3")
    # The rollout's promotion sets `previous` itself: no separate drift change for it.
    assert ReasonCode.DRIFT_ALIAS not in codes(traffic_stages.restore_drifted_aliases(rolled))


def test_placeholders_name_the_versions_the_plan_makes(desired: DesiredState) -> None:
    p = traffic_stages.rollout(planned(desired, NPC, converged), None)
    shift = p.changes[0]
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.candidate == NEW_VERSION
    promote = p.changes[1]
    assert isinstance(promote, PromoteChange)
    assert promote.after.aliases[Alias.CHAMPION] == NEW_VERSION
