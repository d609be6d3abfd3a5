"""Rollouts applied for real - MLflow, the route table, the journal, the request log - on a
manual clock: each path of the rollout machine as the apply engine drives it."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable

import pytest

from reconciler import lineage
from reconciler.apply import aliases
from reconciler.apply.context import ApplyContext, UseCaseRun
from reconciler.apply.journal import Cause, ControlOutcome, Journal, OperationStatus
from reconciler.apply.plan_runner import AlteredPlanError, StalePlanError, apply_plan
from reconciler.apply.status import use_case_status
from reconciler.health import Health
from reconciler.lineage import Alias
from reconciler.observe.observer import observe
from reconciler.observe.state import Route
from reconciler.plan import planfile
from reconciler.plan.diff import diff, live_routes
from reconciler.plan.model import Plan, PromoteChange, ShiftChange
from reconciler.rollout.analysis import AnalysisOutcome
from reconciler.rollout.state import Control, Phase
from reconciler.traffic.store import Writer
from tests.apply.world import USE_CASE, ErrorRule, World


class Crash(BaseException):
    """The process dies here (as SIGKILL would: nothing after it runs)."""


def plan_now(world: World) -> Plan:
    observed = observe(world.desired, world.registry, world.traffic)
    return diff(world.desired, observed, only=[USE_CASE])


def status_of(world: World) -> dict[str, object]:
    observed = observe(world.desired, world.registry, world.traffic)
    statuses = use_case_status(
        world.desired, observed, plan_now(world), world.journal, locks=world.locks
    )
    return next(s for s in statuses if s.name == USE_CASE).as_json()


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
    judged = world.journal.judgements(USE_CASE)
    assert [(j.stage, j.outcome) for j in judged] == [
        (w, AnalysisOutcome.SUCCESSFUL) for w in ("10%", "25%", "50%", "75%", "100%")
    ]
    # Every step baked its full 30 minutes on its own window.
    assert all(j.window_end - j.window_start >= 1800 for j in judged)
    (change,) = world.journal.history(USE_CASE)
    assert (change.version, change.previous, change.cause) == ("3", "2", Cause.COMMIT)
    # Converged: the next plan is empty, and status says so.
    assert not plan_now(world).has_changes
    status = status_of(world)
    assert (status["sync"], status["health"], status["champion"]) == ("Synced", "Healthy", "3")


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
    assert world.analyses()[0].startswith("10%: passed")
    # failureLimit 2: two failed checks at 25%, each on a fresh window, then the rollback.
    failed = [j for j in world.journal.judgements(USE_CASE) if j.outcome is AnalysisOutcome.FAILED]
    assert [j.stage for j in failed] == ["25%", "25%"]
    retry = plan_now(world)
    assert [c.action.value for c in retry.changes] == ["noop"]
    assert "rejected" in retry.changes[0].reason
    status = status_of(world)
    assert status["health"] == "Degraded" and "rejected" in str(status["message"])


def test_no_traffic_keeps_baking_until_the_deadline_then_pauses_never_promotes(
    world: World,
) -> None:
    result = apply_plan(plan_now(world), world.context())

    assert result.health is Health.SUSPENDED
    assert world.aliases() == {"champion": "2", "challenger": "3"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("2", 90), Route("3", 10))
    state = world.journal.rollout(USE_CASE)
    assert state is not None and state.phase is Phase.PAUSED
    judged = world.journal.judgements(USE_CASE)
    assert {j.outcome for j in judged} == {AnalysisOutcome.INCONCLUSIVE}
    assert len(judged) > 1  # judged again at the interval while there was time
    assert judged[-1].window_end - judged[-1].window_start >= 7200  # the 2h progress deadline
    status = status_of(world)
    assert status["health"] == "Suspended"
    assert "no evidence by the progress deadline" in str(status["message"])
    rollout = status["rollout"]
    assert isinstance(rollout, dict) and rollout["stage"] == "10%"
    assert rollout["last_judgement"]["outcome"] == "Inconclusive"


def test_a_rollout_paused_for_no_data_tries_its_step_again_at_the_next_apply(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    apply_plan(plan_now(world), world.context())  # no players yet: paused at 10%
    served_traffic(never_fails)
    resumed = plan_now(world)
    assert "resuming at 10%" in resumed.changes[0].reason
    assert apply_plan(resumed, world.context()).health is Health.HEALTHY
    assert world.aliases()["champion"] == "3"
    outcomes = [(j.stage, j.outcome) for j in world.journal.judgements(USE_CASE)]
    assert outcomes[0] == ("10%", AnalysisOutcome.INCONCLUSIVE)
    assert ("10%", AnalysisOutcome.SUCCESSFUL) in outcomes  # judged again, never taken as passed


def test_evidence_arriving_late_is_waited_for_within_the_deadline(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    late = world.clock.now() + 2400  # players come 40 minutes into the first 30-minute bake

    def quiet_until_late(version: str, weight: int) -> bool:
        return False

    served_traffic(quiet_until_late)
    players = world.clock.on_sleep.pop()
    world.clock.on_sleep.append(lambda a, b: players(max(a, late), b) if b > late else None)

    assert apply_plan(plan_now(world), world.context()).health is Health.HEALTHY
    at_10 = [j for j in world.journal.judgements(USE_CASE) if j.stage == "10%"]
    assert [j.outcome for j in at_10[:-1]] == [AnalysisOutcome.INCONCLUSIVE] * (len(at_10) - 1)
    assert at_10[-1].outcome is AnalysisOutcome.SUCCESSFUL
    # One growing window, judged again every minute until the evidence was there.
    assert {j.window_start for j in at_10} == {at_10[0].window_start}
    assert at_10[1].window_end - at_10[0].window_end == pytest.approx(60)
    assert at_10[-1].window_end > late


def test_a_crash_during_the_final_bake_bakes_and_judges_100_percent_before_promoting(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)

    def die_in_final_bake(since: float, until: float) -> None:
        state = world.journal.rollout(USE_CASE)
        if state and state.stage.weight == 100 and state.stage_started_at is not None:
            raise Crash

    world.clock.on_sleep.append(die_in_final_bake)
    with pytest.raises(Crash):
        apply_plan(plan_now(world), world.context())
    world.clock.on_sleep.remove(die_in_final_bake)
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("3", 100),)
    assert world.aliases()["champion"] == "2"
    crashed_at = world.clock.now()

    plan = plan_now(world)
    shift = plan.changes[0]
    assert isinstance(shift, ShiftChange) and shift.after.rollout is not None
    assert shift.after.rollout.steps == [100]  # the plan sees the routes at 100%...
    assert apply_plan(plan, world.context()).health is Health.HEALTHY
    # ...but 100% was baked and judged before the promotion.
    final = [j for j in world.journal.judgements(USE_CASE) if j.stage == "100%"]
    assert [j.outcome for j in final] == [AnalysisOutcome.SUCCESSFUL]
    assert final[0].window_end > crashed_at
    assert world.aliases() == {"champion": "3", "previous": "2"}


def test_a_promotion_without_a_passed_final_analysis_is_refused(world: World) -> None:
    # The candidate stands at 100% (a hand edit, a crash), but nothing judged it there.
    world.registry.set_alias(USE_CASE, "challenger", "3")
    world.traffic.write(USE_CASE, [Route("3", 100)], writer=Writer.RECONCILER)
    promote = next(c for c in plan_now(world).changes if isinstance(c, PromoteChange))
    assert promote.after.requires_analysis
    only_promote = plan_now(world).model_copy(update={"changes": (promote,)})

    result = apply_plan(only_promote, world.context(), check_stale=False)

    assert result.health is Health.DEGRADED
    assert "no passed analysis at its last step" in result.outcomes[0].message
    assert world.aliases()["champion"] == "2"


@pytest.mark.parametrize(
    ("control", "health", "champion"),
    [(Control.ABORT, Health.DEGRADED, "2"), (Control.PROMOTE, Health.HEALTHY, "3")],
)
def test_operator_controls_during_a_bake(
    world: World,
    served_traffic: Callable[[ErrorRule], None],
    control: Control,
    health: Health,
    champion: str,
) -> None:
    served_traffic(never_fails)
    start = world.clock.now()

    def operator(since: float, until: float) -> None:
        if until - start >= 600 and world.journal.pending_control(USE_CASE) is None:
            world.journal.request(USE_CASE, control)
            world.clock.on_sleep.remove(operator)

    world.clock.on_sleep.append(operator)
    result = apply_plan(plan_now(world), world.context())

    assert result.health is health, world.lines
    assert world.aliases()["champion"] == champion
    assert world.journal.judgements(USE_CASE) == []  # obeyed within the first bake
    assert world.clock.now() - start < 1800
    obeyed = world.journal.control_record(USE_CASE)
    assert obeyed is not None
    assert (obeyed.control, obeyed.outcome, obeyed.reason) == (
        control,
        ControlOutcome.OBEYED,
        "",
    )
    if control is Control.ABORT:
        assert world.version_tags("3")[lineage.REJECTED] == "aborted by an operator"
    else:
        (change,) = world.journal.history(USE_CASE)
        assert change.cause is Cause.MANUAL


def test_operator_pause_holds_the_rollout_until_resumed(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)
    world.journal.request(USE_CASE, Control.PAUSE)
    assert apply_plan(plan_now(world), world.context()).health is Health.SUSPENDED
    assert world.aliases()["champion"] == "2"
    assert apply_plan(plan_now(world), world.context()).health is Health.SUSPENDED  # still
    assert "paused by an operator" in str(status_of(world)["message"])
    world.journal.request(USE_CASE, Control.RESUME)
    assert apply_plan(plan_now(world), world.context()).health is Health.HEALTHY


def test_a_controller_advances_a_rollout_one_step_per_cycle_without_waiting(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)
    cycles = 0
    while world.aliases().get("champion") != "3":
        cycles += 1
        assert cycles < 100, world.lines
        before = world.clock.now()
        result = apply_plan(plan_now(world), world.context(drive_rollouts=False))
        assert world.clock.now() == before  # a cycle never waits on a bake
        (outcome,) = result.outcomes
        if outcome.health is Health.PROGRESSING:
            assert outcome.requeue_after is not None
            world.clock.sleep(outcome.requeue_after)  # the controller's next cycle
    assert world.journal.rollout(USE_CASE) is not None
    assert len(world.journal.judgements(USE_CASE)) == 5


def test_stale_saved_plan_is_refused(world: World) -> None:
    plan = plan_now(world)
    world.traffic.write(USE_CASE, [Route("1", 100)], writer=Writer.MANUAL)
    with pytest.raises(StalePlanError, match="registry or the traffic changed"):
        apply_plan(plan, world.context())
    assert world.aliases() == {"champion": "2"}  # nothing was half-applied


def test_a_plan_of_one_use_case_is_not_stale_when_another_moves(world: World) -> None:
    # `apply --only npc-dialogue` beside a rollout of faction-decision (the demo runs its
    # use cases so): faction-decision's routes changing meanwhile is not this plan's business.
    plan = plan_now(world)
    others = [u.name for u in world.desired.use_cases if u.name != USE_CASE]
    assert others
    world.traffic.write(others[0], [Route("7", 100)], writer=Writer.MANUAL)
    result = apply_plan(plan, world.context())  # not refused as stale
    assert [o.use_case for o in result.outcomes] == [USE_CASE]
    assert plan.has_changes and world.journal.last_operation(USE_CASE) is not None


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc["changes"][0]["after"]["rollout"].update(steps=[100]),
        lambda doc: doc["changes"][0]["after"]["rollout"].update(candidate="1"),
        lambda doc: doc["changes"].pop(0),
    ],
    ids=["skip-the-canary", "another-version", "drop-a-change"],
)
def test_an_edited_saved_plan_is_refused_before_anything_moves(
    world: World, edit: Callable[[dict[str, object]], object]
) -> None:
    document = json.loads(planfile.dumps(plan_now(world)))
    edit(document)
    document.pop("summary")
    tampered = Plan.model_validate(document)
    with pytest.raises(AlteredPlanError, match="does not match what the planner makes"):
        apply_plan(tampered, world.context())
    assert world.aliases() == {"champion": "2"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("2", 100),)


def test_weights_edited_by_hand_are_healed(world: World) -> None:
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
    from reconciler.apply.locks import LockHeldError

    held = pytest.raises(LockHeldError, match=r"being reconciled by pid \d+ on ")
    with world.locks.hold(USE_CASE), held:
        apply_plan(plan_now(world), world.context(), lock_timeout=0.3)
    assert world.aliases() == {"champion": "2"}


def test_a_row_left_running_by_a_dead_process_is_reported_interrupted(world: World) -> None:
    digest = world.desired.identities[USE_CASE].digest
    world.journal.start(USE_CASE, digest, "shift", 0)  # and then the process died
    status = status_of(world)
    assert status["last_operation"]["status"] == "interrupted"  # type: ignore[index]
    assert status["health"] != "Progressing"
    apply_plan(plan_now(world), world.context(drive_rollouts=False))
    rows = world.journal.last_operation(USE_CASE)
    assert rows is not None and rows.status is not OperationStatus.RUNNING
    first = world.journal.interrupt_orphans(USE_CASE)
    assert first == 0  # the apply already marked it


def test_an_unexpected_error_in_one_use_case_is_recorded_and_the_others_go_on(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    """story-generation must register its first version: this builder breaks with a bug."""

    class BrokenBuilder:
        def register_base(self, use_case: object, identity: object) -> str:
            raise RuntimeError("boom")

    served_traffic(never_fails)
    observed = observe(world.desired, world.registry, world.traffic)
    plan = diff(world.desired, observed, only=[USE_CASE, "story-generation"])
    context: ApplyContext = world.context()
    context = context.__class__(**{**context.__dict__, "builder": BrokenBuilder()})

    result = apply_plan(plan, context, parallelism=2)

    outcomes = {o.use_case: o for o in result.outcomes}
    assert outcomes[USE_CASE].health is Health.HEALTHY
    broken = outcomes["story-generation"]
    assert broken.health is Health.DEGRADED and not broken.retryable
    assert "internal error: RuntimeError: boom" in broken.message
    row = world.journal.last_operation("story-generation")
    assert row is not None and row.status is OperationStatus.FAILED
    assert world.aliases()[Alias.CHAMPION.value] == "3"


class CrashingRegistry:
    """The real registry, until the process dies at one write of the promotion."""

    def __init__(self, world: World, crash_at: tuple[str, str]) -> None:
        self._world = world
        self._real = world.registry
        self._crash_at = crash_at
        self.crashed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def _maybe_crash(self, method: str, key: str) -> None:
        state = self._world.journal.rollout(USE_CASE)
        promoting = state is not None and state.phase is Phase.PROMOTING
        if promoting and not self.crashed and (method, key) == self._crash_at:
            self.crashed = True
            raise Crash

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._maybe_crash("set_alias", alias)
        self._real.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._maybe_crash("delete_alias", alias)
        self._real.delete_alias(name, alias)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._maybe_crash("set_model_tag", key)
        self._real.set_model_tag(name, key, value)


@pytest.mark.parametrize(
    "crash_at",
    [
        ("set_model_tag", lineage.APPLIED_ALIASES),  # routes at 100%, nothing recorded
        ("set_alias", "previous"),  # the intent recorded, no alias moved
        ("set_alias", "champion"),  # previous moved, champion not
        ("set_model_tag", "reconciler.history"),  # champion moved, history not on the model
        ("delete_alias", "challenger"),  # everything but the leftover challenger
    ],
)
def test_a_crash_anywhere_in_the_promotion_ends_promoted_with_history_and_previous(
    world: World, served_traffic: Callable[[ErrorRule], None], crash_at: tuple[str, str]
) -> None:
    served_traffic(never_fails)
    crashing = CrashingRegistry(world, crash_at)
    dying = dataclasses.replace(world.context(), registry=crashing)  # type: ignore[arg-type]
    with pytest.raises(Crash):
        apply_plan(plan_now(world), dying)
    assert crashing.crashed

    for _ in range(3):
        plan = plan_now(world)
        if not plan.has_changes:
            break
        assert apply_plan(plan, world.context()).health is Health.HEALTHY, world.lines

    assert not plan_now(world).has_changes
    assert world.aliases() == {"champion": "3", "previous": "2"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("3", 100),)
    history = world.journal.history(USE_CASE)
    assert [(c.version, c.previous) for c in history] == [("3", "2")]
    state = world.journal.rollout(USE_CASE)
    assert state is not None and state.phase is Phase.SUCCEEDED, world.lines
    status = status_of(world)
    assert (status["sync"], status["health"]) == ("Synced", "Healthy"), status


def test_status_of_a_promotion_cut_short_after_its_last_write_is_not_progressing(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)
    assert apply_plan(plan_now(world), world.context()).health is Health.HEALTHY
    # The process died after the last alias write, before the journal heard of it.
    state = world.journal.rollout(USE_CASE)
    assert state is not None
    world.journal.save_rollout(state.evolve(phase=Phase.PROMOTING))

    status = status_of(world)

    assert (status["sync"], status["health"]) == ("Synced", "Healthy"), status


def test_a_rollout_rolled_back_from_outside_drops_the_control_it_did_not_obey(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    served_traffic(never_fails)
    apply_plan(plan_now(world), world.context(drive_rollouts=False))
    state = world.journal.rollout(USE_CASE)
    assert state is not None and state.active
    asked_at = world.journal.request(USE_CASE, Control.PROMOTE)  # not yet obeyed...
    pending = world.journal.control_record(USE_CASE, asked_at)
    assert pending is not None and pending.outcome is ControlOutcome.PENDING
    run = UseCaseRun(
        world.context(), world.desired.use_case(USE_CASE), world.desired.identities[USE_CASE]
    )
    world.clock.advance(90)
    # ...when the guardrail watch rolls the candidate back.
    aliases.rollback(run, restore="2", rejected="3", reason="guardrail critical rate")

    ended = world.journal.rollout(USE_CASE)
    assert ended is not None and ended.phase is Phase.ROLLED_BACK
    assert world.journal.pending_control(USE_CASE) is None
    # Its record says it was dropped, and why - never that it was done.
    record = world.journal.control_record(USE_CASE, asked_at)
    assert record is not None
    assert (record.control, record.outcome) == (Control.PROMOTE, ControlOutcome.DROPPED)
    assert record.reason == (
        "the rollout of 3 was rolled back from outside it: guardrail critical rate"
    )
    assert record.settled_at is not None and record.settled_at > asked_at
    assert world.journal.control_record(USE_CASE) == record  # the latest one


def test_a_journal_failing_for_one_use_case_ends_only_that_one(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    """Outside any change (the journal's own writes): still one use case's failure."""

    class FailingJournal(Journal):
        def start(self, use_case: str, digest: str, action: str, change_index: int) -> int:
            if use_case == "story-generation":
                raise sqlite3.OperationalError("disk I/O error")
            return super().start(use_case, digest, action, change_index)

    served_traffic(never_fails)
    observed = observe(world.desired, world.registry, world.traffic)
    plan = diff(world.desired, observed, only=[USE_CASE, "story-generation"])
    context = dataclasses.replace(
        world.context(), journal=FailingJournal(world.database, clock=world.clock)
    )

    result = apply_plan(plan, context, parallelism=2)

    outcomes = {o.use_case: o for o in result.outcomes}
    assert outcomes[USE_CASE].health is Health.HEALTHY
    broken = outcomes["story-generation"]
    assert broken.health is Health.DEGRADED
    assert "internal error: OperationalError: disk I/O error" in broken.message
