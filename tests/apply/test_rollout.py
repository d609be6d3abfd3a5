"""Progressive shift end to end on real MLflow, the real route table and the real request log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from reconciler import lineage
from reconciler.apply.engine import apply_plan
from reconciler.apply.journal import Cause, Control, RolloutProgress
from reconciler.apply.status import use_case_status
from reconciler.health import Health, Sync
from reconciler.observe.observer import observe
from reconciler.observe.state import Route
from reconciler.plan.diff import diff, live_routes
from reconciler.plan.model import Plan
from reconciler.traffic.store import Writer
from tests.apply.world import USE_CASE, ErrorRule, World


def plan_now(world: World) -> Plan:
    observed = observe(world.desired, world.registry, world.traffic)
    return diff(world.desired, observed, only=[USE_CASE])


def never_fails(version: str, weight: int) -> bool:
    return False


def test_good_candidate_goes_through_every_step_to_champion(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)
    plan = plan_now(world)
    assert [c.action.value for c in plan.changes] == ["shift", "promote"]

    result = apply_plan(plan, world.context())

    assert result.health is Health.HEALTHY, world.lines
    assert world.aliases() == {"champion": "3", "previous": "2"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("3", 100),)
    steps = [line for line in world.lines if "analysis at" in line]
    assert [s.split("analysis at ")[1].split("%")[0] for s in steps] == [
        "10",
        "25",
        "50",
        "75",
        "100",
    ]
    (change,) = world.journal.history(USE_CASE)
    assert (change.version, change.previous, change.cause) == ("3", "2", Cause.COMMIT)
    # Converged: the next plan is empty, and status says so.
    after = plan_now(world)
    assert not after.has_changes
    observed = observe(world.desired, world.registry, world.traffic)
    status = {s.name: s for s in use_case_status(world.desired, observed, after, world.journal)}[
        USE_CASE
    ]
    assert (status.sync, status.health, status.champion) == (Sync.SYNCED, Health.HEALTHY, "3")


def test_candidate_failing_at_step_two_is_rolled_back_and_not_retried(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    # The candidate breaks once it takes 25% of the traffic.
    served_traffic(lambda version, weight: version == "3" and weight >= 25)

    result = apply_plan(plan_now(world), world.context())

    assert result.health is Health.DEGRADED
    assert world.aliases() == {"champion": "2"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("2", 100),)
    tags = world.version_tags("3")
    assert "errorRate" in tags[lineage.REJECTED] and "25%" in tags[lineage.REJECTED]
    assert tags[lineage.REJECTED_DIGEST] == world.desired.identities[USE_CASE].digest
    assert any("analysis at 10%: passed" in line for line in world.lines)
    retry = plan_now(world)
    assert [c.action.value for c in retry.changes] == ["noop"]
    assert "rejected" in retry.changes[0].reason


def test_no_traffic_pauses_and_never_promotes(world: World) -> None:
    result = apply_plan(plan_now(world), world.context())

    assert result.health is Health.SUSPENDED
    assert world.aliases() == {"champion": "2", "challenger": "3"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("2", 90), Route("3", 10))
    progress = world.journal.rollout(USE_CASE)
    assert progress is not None and "fewer than minRequests" in (progress.paused_reason or "")
    observed = observe(world.desired, world.registry, world.traffic)
    statuses = use_case_status(world.desired, observed, plan_now(world), world.journal)
    status = next(s for s in statuses if s.name == USE_CASE)
    assert status.health is Health.SUSPENDED


def test_paused_rollout_resumes_at_its_step(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    apply_plan(plan_now(world), world.context())  # no traffic yet: paused at 10%
    served_traffic(never_fails)
    resumed = plan_now(world)
    assert "resuming at 10%" in resumed.changes[0].reason
    assert apply_plan(resumed, world.context()).health is Health.HEALTHY
    assert world.aliases()["champion"] == "3"
    # The step that paused was judged again, not taken as passed.
    analyses = [line.split("analysis at ")[1] for line in world.lines if "analysis at" in line]
    assert analyses[0].startswith("10%: 0 requests")
    assert analyses[1].startswith("10%: passed")


def test_a_resumed_rollout_skips_only_steps_whose_analysis_passed(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    # A crash right after 25% passed, before the weights moved on: the canary stands at 25%.
    world.registry.set_alias(USE_CASE, "challenger", "3")
    world.registry.set_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "2", "challenger": "3"})
    )
    world.traffic.write(USE_CASE, [Route("2", 75), Route("3", 25)], writer=Writer.RECONCILER)
    digest = world.desired.identities[USE_CASE].digest
    world.journal.save_rollout(RolloutProgress(USE_CASE, digest, "3", "2", 25, 0, time.time()))
    served_traffic(never_fails)

    plan = plan_now(world)
    assert plan.changes[0].after is not None
    assert plan.changes[0].after["steps"] == [25, 50, 75, 100]
    assert apply_plan(plan, world.context()).health is Health.HEALTHY

    judged = [line.split("analysis at ")[1][:3] for line in world.lines if "analysis at" in line]
    assert judged == ["50%", "75%", "100"]
    assert world.aliases() == {"champion": "3", "previous": "2"}


def test_operator_abort_during_bake_rolls_back(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)

    def abort_soon() -> None:
        time.sleep(0.1)
        world.journal.request(USE_CASE, Control.ABORT)

    threading.Thread(target=abort_soon).start()
    result = apply_plan(plan_now(world), world.context())
    assert result.health is Health.DEGRADED
    assert world.aliases() == {"champion": "2"}
    assert world.version_tags("3")[lineage.REJECTED] == "aborted by an operator"


def test_operator_promote_skips_the_remaining_steps(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)
    world.journal.request(USE_CASE, Control.PROMOTE)
    result = apply_plan(plan_now(world), world.context())
    assert result.health is Health.HEALTHY
    assert world.aliases()["champion"] == "3"
    assert not [line for line in world.lines if "analysis at 25%" in line]


def test_operator_pause_holds_the_rollout(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)
    world.journal.request(USE_CASE, Control.PAUSE)
    assert apply_plan(plan_now(world), world.context()).health is Health.SUSPENDED
    assert world.aliases()["champion"] == "2"


def test_stale_saved_plan_is_refused(world: World) -> None:
    from reconciler.apply.engine import StalePlanError
    from reconciler.traffic.store import Writer

    plan = plan_now(world)
    world.traffic.write(USE_CASE, [Route("1", 100)], writer=Writer.MANUAL)
    with pytest.raises(StalePlanError, match="registry or the traffic changed"):
        apply_plan(plan, world.context())
    assert world.aliases() == {"champion": "2"}  # nothing was half-applied


def test_weights_edited_by_hand_are_healed(world: World) -> None:
    from reconciler.traffic.store import Writer

    world.registry.set_alias(USE_CASE, "champion", "3")
    world.registry.set_model_tag(USE_CASE, lineage.APPLIED_ALIASES, '{"champion": "3"}')
    world.traffic.write(USE_CASE, [Route("3", 100)], writer=Writer.RECONCILER)
    world.traffic.write(USE_CASE, [Route("2", 50), Route("3", 50)], writer=Writer.MANUAL)
    plan = plan_now(world)
    assert [(c.action.value, c.drift) for c in plan.changes] == [("shift", True)]
    assert apply_plan(plan, world.context()).health is Health.HEALTHY
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("3", 100),)
    assert not world.traffic.read(USE_CASE).drifted


def test_second_apply_waits_for_the_lock_and_names_the_holder(world: World) -> None:
    from reconciler.apply.locks import LockHeldError, use_case_lock

    held = pytest.raises(LockHeldError, match=r"being reconciled by pid \d+ on ")
    with use_case_lock(world.state_dir, USE_CASE), held:
        apply_plan(plan_now(world), world.context(), lock_timeout=0.3)
    assert world.aliases() == {"champion": "2"}
