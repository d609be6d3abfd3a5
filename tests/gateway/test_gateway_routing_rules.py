"""Route choice as pure rules: exact weighted shares, sticky buckets that hold across route
changes, shadow sampling."""

from __future__ import annotations

from collections import Counter

import pytest

from reconciler.gateway.routing import BUCKETS, RoutePlan, sticky_bucket, version_for_bucket
from reconciler.observe.state import Route

SESSIONS = [f"player-{i}" for i in range(3000)]


def test_anonymous_requests_get_exactly_their_share_every_hundred() -> None:
    plan = RoutePlan.of("npc", 3, [Route("1", 90), Route("2", 5), Route("3", 5)])
    for _ in range(3):
        assert Counter(plan.choose() for _ in range(100)) == {"1": 90, "2": 5, "3": 5}


def test_the_canary_is_spread_out_rather_than_bunched() -> None:
    plan = RoutePlan.of("npc", 1, [Route("1", 50), Route("2", 50)])
    assert [plan.choose() for _ in range(6)] in (["1", "2"] * 3, ["2", "1"] * 3)


def test_zero_weight_routes_get_nothing() -> None:
    plan = RoutePlan.of("npc", 1, [Route("1", 100), Route("2", 0)])
    assert {plan.choose() for _ in range(50)} == {"1"}
    assert plan.versions == ("1",)


def test_a_session_maps_to_one_version() -> None:
    plan = RoutePlan.of("npc", 7, [Route("1", 50), Route("2", 50)])
    assert len({plan.choose("player-42") for _ in range(20)}) == 1
    assert sticky_bucket("npc", "player-42") == sticky_bucket("npc", "player-42")
    spread = Counter(plan.choose(f"player-{i}") for i in range(2000))
    assert abs(spread["1"] / 2000 - 0.5) < 0.05


def _assignment(plan: RoutePlan) -> dict[str, str]:
    return {session: plan.choose(session) for session in SESSIONS}


def test_rewriting_the_same_weights_moves_nobody() -> None:
    routes = [Route("1", 70), Route("2", 20), Route("3", 10)]
    before = _assignment(RoutePlan.of("npc", 7, routes))
    # A new generation, written in another order: the same table as far as players go.
    after = _assignment(RoutePlan.of("npc", 8, list(reversed(routes))))
    assert before == after


@pytest.mark.parametrize(("champion", "canary"), [("1", "2"), ("9", "10")])
def test_canary_steps_only_add_players_to_the_canary(champion: str, canary: str) -> None:
    on_canary: set[str] = set()
    for generation, weight in enumerate((10, 25, 50, 75, 100), start=1):
        routes = [Route(champion, 100 - weight), Route(canary, weight)]
        plan = RoutePlan.of("npc", generation, routes)
        assignment = _assignment(plan)
        now_on_canary = {s for s, version in assignment.items() if version == canary}
        # Every player the canary had at the lower weight is still on it at the higher one.
        assert on_canary <= now_on_canary, (weight, len(on_canary - now_on_canary))
        # And the split still follows the weights.
        assert abs(len(now_on_canary) / len(SESSIONS) - weight / 100) < 0.02, weight
        on_canary = now_on_canary


def test_a_rollback_moves_only_the_canary_players() -> None:
    with_canary = _assignment(RoutePlan.of("npc", 1, [Route("1", 75), Route("2", 25)]))
    rolled_back = _assignment(RoutePlan.of("npc", 2, [Route("1", 100), Route("2", 0)]))
    assert {s for s, v in with_canary.items() if v == "1"} <= set(rolled_back)
    assert set(rolled_back.values()) == {"1"}


def test_three_way_splits_follow_the_weights() -> None:
    plan = RoutePlan.of("npc", 3, [Route("1", 70), Route("2", 20), Route("3", 10)])
    counts = Counter(_assignment(plan).values())
    for version, weight in (("1", 70), ("2", 20), ("3", 10)):
        assert abs(counts[version] / len(SESSIONS) - weight / 100) < 0.02, (version, counts)


def test_use_cases_draw_their_canary_players_independently() -> None:
    npc = RoutePlan.of("npc", 1, [Route("1", 50), Route("2", 50)])
    story = RoutePlan.of("story", 1, [Route("1", 50), Route("2", 50)])
    same = sum(npc.choose(s) == story.choose(s) for s in SESSIONS)
    assert 0.4 < same / len(SESSIONS) < 0.6


def test_buckets_follow_cumulative_weights() -> None:
    routes = [Route("1", 10), Route("2", 90)]
    assert version_for_bucket(routes, 0) == "1"
    assert version_for_bucket(routes, BUCKETS // 10 - 1) == "1"
    assert version_for_bucket(routes, BUCKETS // 10) == "2"
    assert version_for_bucket(routes, BUCKETS - 1) == "2"


def test_shadows_receive_their_weight_as_a_share_of_copies() -> None:
    plan = RoutePlan.of("npc", 1, [Route("1", 100), Route("9", 25, shadow=True)])
    mirrored = [plan.mirrors() for _ in range(100)]
    assert sum(1 for m in mirrored if m == ("9",)) == 25
    assert plan.versions == ("1", "9")
    assert plan.live == (Route("1", 100),)


def test_a_plan_without_live_routes_is_not_servable() -> None:
    assert not RoutePlan.of("npc", 0, []).servable
    assert not RoutePlan.of("npc", 2, [Route("9", 100, shadow=True)]).servable
