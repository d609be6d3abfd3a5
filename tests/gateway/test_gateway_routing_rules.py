"""Route choice as pure rules: exact weighted shares, sticky buckets, shadow sampling."""

from __future__ import annotations

from collections import Counter

from reconciler.gateway.routing import BUCKETS, RoutePlan, sticky_bucket, version_for_bucket
from reconciler.observe.state import Route


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


def test_a_session_maps_to_one_version_per_generation() -> None:
    plan = RoutePlan.of("npc", 7, [Route("1", 50), Route("2", 50)])
    assert len({plan.choose("player-42") for _ in range(20)}) == 1
    assert sticky_bucket("player-42", 7) == sticky_bucket("player-42", 7)
    spread = Counter(plan.choose(f"player-{i}") for i in range(2000))
    assert abs(spread["1"] / 2000 - 0.5) < 0.05


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
