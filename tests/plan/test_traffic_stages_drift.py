"""Routing all traffic to one version and healing aliases moved by hand, each on its own: a
table of situations and exactly the changes each adds, marked drift where they restore what
the reconciler last applied."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.lineage import Alias
from reconciler.observe.state import Route
from reconciler.plan import build_stages, traffic_stages
from reconciler.plan.model import (
    Action,
    AliasesBefore,
    NoopChange,
    PromoteAfter,
    ReasonCode,
)
from reconciler.plan.planned import Planned
from reconciler.spec.loader import DesiredState
from tests.plan.worlds import (
    FACTION,
    NPC,
    Build,
    Expect,
    World,
    added,
    champion_moved_by_hand,
    converged,
    in_rollout,
    leftover_challenger,
    planned,
    previous_moved_by_hand,
    rejected_still_serving,
    route_all,
    version_of,
    weights_edited_by_hand,
    without_routes,
)

# --- route all traffic to one version -------------------------------------------------------


def rollout_weights_edited(w: World) -> World:
    """A canary at 75/25 that someone set to 50/50."""
    in_rollout(w)
    w.routes = (Route("2", 50), Route("3", 50))
    return w


def with_shadow(w: World) -> World:
    """Converged on 2, with candidate 3 on mirrored traffic."""
    converged(w).passed("3")
    w.routes = (Route("2", 100), Route("3", 100, shadow=True))
    return w


ROUTE_ALL_CASES: list[tuple[str, Build, str, list[Expect]]] = [
    ("already all to it", converged, "2", []),
    ("a shadow route is not live traffic: nothing to do", with_shadow, "2", []),
    ("no routes yet", lambda w: w.base(), "1", [route_all("1", serving=[])]),
    (
        "weights edited by hand away from the reconciler's: drift restored",
        weights_edited_by_hand,
        "2",
        [route_all("2", serving=[("1", 50), ("2", 50)], drift=True)],
    ),
    (
        "edited by hand, but the reconciler had written other weights: not a restore",
        rollout_weights_edited,
        "2",
        [route_all("2", serving=[("2", 50), ("3", 50)])],
    ),
]


@pytest.mark.parametrize(
    ("title", "build", "version", "expected"), ROUTE_ALL_CASES, ids=[c[0] for c in ROUTE_ALL_CASES]
)
def test_route_all_to(
    desired: DesiredState, title: str, build: Build, version: str, expected: list[Expect]
) -> None:
    p = traffic_stages.route_all_to(planned(desired, NPC, build), version, "champion")
    assert added(p) == expected


# --- heal aliases moved by hand -------------------------------------------------------------


def never_recorded(w: World) -> World:
    """Champion moved to 1, but the reconciler never recorded the aliases it set."""
    champion_moved_by_hand(w)
    w.applied = None
    return w


def champion_and_previous_moved_by_hand(w: World) -> World:
    """Converged on 2 with 1 as previous; by hand, champion became 1 and previous 2."""
    previous_moved_by_hand(w)
    w.aliases["champion"] = "1"
    return w


def restore(alias: Alias, actual: str | None, recorded: str | None) -> Expect:
    return Expect(
        Action.PROMOTE,
        ReasonCode.DRIFT_ALIAS,
        before=AliasesBefore(aliases={alias: actual}),
        after=PromoteAfter(aliases={alias: recorded}),
        drift=True,
    )


DRIFT_CASES: list[tuple[str, Build, list[Expect]]] = [
    ("in sync", converged, []),
    ("the reconciler never recorded its aliases: nothing to compare", never_recorded, []),
    ("previous moved by hand", previous_moved_by_hand, [restore(Alias.PREVIOUS, "2", "1")]),
    (
        "challenger set by hand: removed",
        leftover_challenger(by_reconciler=False),
        [restore(Alias.CHALLENGER, "1", None)],
    ),
    (
        "champion and previous moved by hand: both, in alias order",
        champion_and_previous_moved_by_hand,
        [restore(Alias.CHAMPION, "1", "2"), restore(Alias.PREVIOUS, "2", "1")],
    ),
]


@pytest.mark.parametrize(
    ("title", "build", "expected"), DRIFT_CASES, ids=[c[0] for c in DRIFT_CASES]
)
def test_restore_drifted_aliases(
    desired: DesiredState, title: str, build: Build, expected: list[Expect]
) -> None:
    p = traffic_stages.restore_drifted_aliases(planned(desired, NPC, build))
    assert added(p) == expected


def test_restore_drifted_aliases_skips_aliases_a_planned_change_sets(desired: DesiredState) -> None:
    def moved(w: World) -> World:
        previous_moved_by_hand(w).passed("3")
        w.aliases["challenger"] = "1"  # by hand, too
        return w

    rolled = traffic_stages.rollout(planned(desired, NPC, moved), "3")
    # The rollout's shift sets the challenger and its promotion sets `previous`: no separate
    # drift change for either.
    assert added(traffic_stages.restore_drifted_aliases(rolled)) == added(rolled)


def test_aliases_set_by_each_kind_of_change(desired: DesiredState) -> None:
    shift, promote = traffic_stages.rollout(
        planned(desired, NPC, lambda w: converged(w).passed("3")), "3"
    ).changes
    (route,) = traffic_stages.route_all_to(planned(desired, NPC, without_routes), "2", "x").changes
    p = planned(desired, NPC, rejected_still_serving)
    (rollback,) = build_stages.rejected(p, version_of(p, "3"), "errorRate 0.2 > 0.01").changes
    noop = NoopChange(use_case=NPC, code=ReasonCode.IN_SYNC, reason="in sync")
    assert [traffic_stages.aliases_set_by(c) for c in (shift, promote, route, rollback, noop)] == [
        {Alias.CHALLENGER},  # a rollout's shift makes the candidate challenger
        {Alias.CHAMPION, Alias.CHALLENGER, Alias.PREVIOUS},
        set(),
        {Alias.CHAMPION, Alias.CHALLENGER},
        set(),
    ]


HEALING_STAGES: list[tuple[str, Callable[[World], World], Callable[[Planned], Planned]]] = [
    (
        "the rollout restores the champion alias",
        champion_moved_by_hand,
        lambda p: traffic_stages.rollout(p, "2"),
    ),
    (
        "routing restores the weights",
        weights_edited_by_hand,
        lambda p: traffic_stages.route_all_to(p, "2", "champion"),
    ),
    (
        "alias healing restores previous",
        previous_moved_by_hand,
        traffic_stages.restore_drifted_aliases,
    ),
]


@pytest.mark.parametrize(("name", "self_heal"), [(FACTION, False), (NPC, True)])
@pytest.mark.parametrize(
    ("title", "build", "stage"), HEALING_STAGES, ids=[c[0] for c in HEALING_STAGES]
)
def test_drift_says_when_self_heal_is_off(
    desired: DesiredState,
    name: str,
    self_heal: bool,
    title: str,
    build: Callable[[World], World],
    stage: Callable[[Planned], Planned],
) -> None:
    assert desired.use_case(name).spec.sync_policy.self_heal is self_heal
    (change,) = stage(planned(desired, name, build)).changes
    assert change.drift
    note = "[selfHeal is off: apply reports this drift and leaves it]"
    assert (note in change.reason) is not self_heal
