"""The rollout stage on its own: a table of situations (what the registry and the route
table show, and the candidate) and exactly the changes it adds - the shift of a rollout and
its promotion, or what brings the champion back to all traffic. Drift has its own file."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.observe.state import Route
from reconciler.plan import build_stages, traffic_stages
from reconciler.plan.model import (
    NEW_BASE,
    NEW_VERSION,
    Action,
    AliasesBefore,
    PromoteAfter,
    ReasonCode,
    RolloutPlan,
    ServingBefore,
    ShiftAfter,
    ShiftChange,
)
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import RolloutStrategy, UseCase
from tests.plan.worlds import (
    NPC,
    STORY,
    Build,
    Expect,
    World,
    added,
    aliases,
    champion_deleted,
    champion_moved_by_hand,
    converged,
    in_rollout,
    leftover_challenger,
    planned,
    route_all,
    routes,
    weights_edited_by_hand,
    without_routes,
)

NPC_STEPS = [10, 25, 50, 75, 100]


def first_champion(target: str, *, replaces: str | None = None) -> list[Expect]:
    return [
        Expect(
            Action.PROMOTE,
            ReasonCode.FIRST_CHAMPION,
            before=AliasesBefore(aliases=aliases(champion=replaces)),
            after=PromoteAfter(aliases=aliases(champion=target, challenger=None)),
        ),
        route_all(target, serving=[]),
    ]


def canary(
    target: str,
    *,
    serving: list[tuple[str, int]],
    champion: str = "2",
    challenger: str | None = None,
    previous: str | None = None,
    steps: list[int] = NPC_STEPS,
    resume: bool = False,
    drift: bool = False,
) -> list[Expect]:
    """A rollout's shift in steps, then the promotion a passed analysis at 100% earns."""
    shift = Expect(
        Action.SHIFT,
        ReasonCode.ROLLOUT_RESUME if resume else ReasonCode.ROLLOUT,
        before=ServingBefore(
            routes=routes(*serving), aliases=aliases(champion=champion, challenger=challenger)
        ),
        after=ShiftAfter(
            routes=routes((target, 100)),
            rollout=RolloutPlan(
                candidate=target,
                champion=champion,
                strategy=RolloutStrategy.CANARY,
                shadow=False,
                steps=steps,
            ),
        ),
        drift=drift,
    )
    promote = Expect(
        Action.PROMOTE,
        ReasonCode.PROMOTE_AFTER_ROLLOUT,
        before=AliasesBefore(
            aliases=aliases(champion=champion, challenger=target, previous=previous)
        ),
        after=PromoteAfter(
            aliases=aliases(champion=target, challenger=None, previous=champion),
            requires_analysis=True,
        ),
    )
    return [shift, promote]


CHAMPION_RESTORED = Expect(
    Action.PROMOTE,
    ReasonCode.DRIFT_ALIAS,
    before=AliasesBefore(aliases=aliases(champion="1")),
    after=PromoteAfter(aliases=aliases(champion="2")),
    drift=True,
)


def champion_and_traffic_moved_by_hand(w: World) -> World:
    """Converged on 2; by hand, the champion alias and all traffic moved to 1."""
    champion_moved_by_hand(w)
    w.routes = (Route("1", 100),)
    return w


def with_previous(w: World) -> World:
    """Converged on 2 with 1 as previous; candidate 3 passed."""
    converged(w).passed("3")
    w.aliases["previous"] = "1"
    assert w.applied is not None
    w.applied["previous"] = "1"
    return w


def unfinished_rollout_of_3(w: World) -> World:
    """Candidate 3 stands at 25%; candidate 4, newer, has passed."""
    return in_rollout(w).passed("4")


def weight_given_by_hand(w: World) -> World:
    """Champion 2; someone sent 25% to candidate 3 without making it challenger."""
    converged(w).passed("3")
    w.routes = (Route("2", 75), Route("3", 25))
    return w


ROLLOUT_CASES: list[tuple[str, str, Build, str | None, list[Expect]]] = [
    ("the champion with all traffic: nothing to do", NPC, converged, "2", []),
    *[
        (
            f"champion with a leftover challenger set by {who}: the alias is removed",
            NPC,
            leftover_challenger(by_reconciler=by_reconciler),
            "2",
            [
                Expect(
                    Action.PROMOTE,
                    ReasonCode.LEFTOVER_CHALLENGER,
                    before=AliasesBefore(aliases=aliases(champion="2", challenger="1")),
                    after=PromoteAfter(aliases=aliases(champion="2", challenger=None)),
                    drift=not by_reconciler,
                )
            ],
        )
        for who, by_reconciler in (("the reconciler", True), ("hand", False))
    ],
    (
        "champion without routes: all traffic to it",
        NPC,
        without_routes,
        "2",
        [route_all("2", serving=[])],
    ),
    (
        "champion, weights edited by hand: the reconciler's weights restored",
        NPC,
        weights_edited_by_hand,
        "2",
        [route_all("2", serving=[("1", 50), ("2", 50)], drift=True)],
    ),
    (
        "champion alias moved by hand: the one the reconciler set is restored",
        NPC,
        champion_moved_by_hand,
        "2",
        [CHAMPION_RESTORED],
    ),
    (
        "champion alias and traffic moved by hand: both restored",
        NPC,
        champion_and_traffic_moved_by_hand,
        "2",
        [
            CHAMPION_RESTORED,
            route_all("2", serving=[("1", 100)], drift=True),
        ],
    ),
    (
        "no champion: the candidate this plan makes is champion at once",
        STORY,
        None,
        None,
        first_champion(NEW_VERSION),
    ),
    (
        "champion deleted from the registry: nothing to canary against",
        NPC,
        champion_deleted,
        "2",
        first_champion("2", replaces="9"),
    ),
    (
        "new candidate: canary from the first step, promoted after a passed analysis",
        NPC,
        lambda w: converged(w).passed("3"),
        "3",
        canary("3", serving=[("2", 100)]),
    ),
    (
        "the candidate this plan makes: a canary of the placeholder",
        NPC,
        converged,
        None,
        canary(NEW_VERSION, serving=[("2", 100)]),
    ),
    (
        "canary standing at 25%: resumed, 25% listed again",
        NPC,
        in_rollout,
        "3",
        canary(
            "3", serving=[("2", 75), ("3", 25)], challenger="3", steps=NPC_STEPS[1:], resume=True
        ),
    ),
    (
        "another candidate's rollout unfinished: replaced from the first step",
        NPC,
        unfinished_rollout_of_3,
        "4",
        canary("4", serving=[("2", 75), ("3", 25)], challenger="3"),
    ),
    (
        "weight given to the candidate by hand: not a resume, marked drift",
        NPC,
        weight_given_by_hand,
        "3",
        canary("3", serving=[("2", 75), ("3", 25)], steps=NPC_STEPS[1:], drift=True),
    ),
    (
        "previous is expected, and replaced by the champion",
        NPC,
        with_previous,
        "3",
        canary("3", serving=[("2", 100)], previous="1"),
    ),
]


@pytest.mark.parametrize(
    ("title", "name", "build", "candidate", "expected"),
    ROLLOUT_CASES,
    ids=[c[0] for c in ROLLOUT_CASES],
)
def test_rollout(
    desired: DesiredState,
    title: str,
    name: str,
    build: Build,
    candidate: str | None,
    expected: list[Expect],
) -> None:
    p = traffic_stages.rollout(planned(desired, name, build), candidate)
    assert added(p) == expected


def test_after_the_base_serves_first_the_candidate_canaries_against_it(
    desired: DesiredState,
) -> None:
    p = planned(desired, NPC)
    p = build_stages.serve_base_first(p, None)
    before = len(p.changes)
    p = traffic_stages.rollout(p, None)
    # `before` of the shift is what the earlier changes of this plan leave behind.
    assert [Expect.of(c) for c in p.changes[before:]] == canary(
        NEW_VERSION, serving=[(NEW_BASE, 100)], champion=NEW_BASE
    )


@pytest.mark.parametrize(
    ("build", "candidate", "says"),
    [
        (in_rollout, "3", "resuming at 25%"),
        (unfinished_rollout_of_3, "4", "replaces the unfinished rollout of 3"),
        (weight_given_by_hand, "3", "weights were edited outside the reconciler"),
    ],
)
def test_the_rollout_reason_says_why_it_is_not_a_plain_canary(
    desired: DesiredState, build: Callable[[World], World], candidate: str, says: str
) -> None:
    shift = traffic_stages.rollout(planned(desired, NPC, build), candidate).changes[0]
    assert says in shift.reason


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


def test_a_canary_already_under_way_skips_the_shadow_phase(desired: DesiredState) -> None:
    use_case = with_rollout(desired, NPC, shadow={"duration": "1h", "minRequests": 50})
    shift = traffic_stages.rollout(planned(desired, NPC, in_rollout, use_case=use_case), "3")
    change = shift.changes[0]
    assert isinstance(change, ShiftChange) and change.after.rollout is not None
    assert not change.after.rollout.shadow and change.after.rollout.steps == NPC_STEPS[1:]


def test_blue_green_plans_a_preview_then_all_at_once(desired: DesiredState) -> None:
    use_case = with_rollout(desired, NPC, strategy="blueGreen")
    p = planned(desired, NPC, lambda w: converged(w).passed("3"), use_case=use_case)
    shift = traffic_stages.rollout(p, "3").changes[0]
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.steps == [100] and shift.after.rollout.shadow
    assert "blue-green 3 against champion 2: preview on mirrored traffic" in shift.reason
    assert "2 stays loaded until the analysis passes" in shift.reason
