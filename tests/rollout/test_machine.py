"""The rollout machine on a manual clock: every path, deterministic, without I/O or sleeping.

`Sim` plays the driver's part in memory: it observes, advances, keeps the persisted state
and carries out the effects on a little world of routes and aliases. Traffic is a function of
the stage and the window, so each test says what the candidate's players see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from reconciler.lineage import Alias
from reconciler.observe.state import Route, normalize_routes
from reconciler.rollout.analysis import AnalysisOutcome, Metric, WindowMetrics, measure
from reconciler.rollout.machine import (
    Advance,
    ClearControl,
    EventKind,
    Observation,
    Promote,
    RollBack,
    SetChallenger,
    SetRoutes,
    advance,
    resume_after_no_data,
    start,
)
from reconciler.rollout.stages import KEEP_WARM_MIRROR, Stage, StageKind, policy_for, stages_for
from reconciler.rollout.state import Control, Judgement, PauseReason, Phase, RolloutState
from reconciler.spec.model import Rollout

T0 = 1_800_000_000.0
Traffic = Callable[[Stage, float, float], WindowMetrics]


def rollout_spec(**overrides: object) -> Rollout:
    document: dict[str, object] = {
        "steps": [10, 50, 100],
        "bakeTime": "10m",
        "progressDeadline": "1h",
        "analysis": {
            "metrics": {"errorRate": {"max": 0.05}, "latencyP95Ms": {"max": 500}},
            "minRequests": 20,
            "interval": "1m",
            "failureLimit": 2,
            "onNoData": "pause",
        },
    }
    document.update(overrides)
    return Rollout.model_validate(document)


def busy(per_minute: float = 10.0, errors: float = 0.0, latency: float = 100.0) -> Traffic:
    """Players at a steady rate; the candidate's share follows its weight or mirror."""

    def traffic(stage: Stage, since: float, until: float) -> WindowMetrics:
        share = (stage.weight or stage.mirror) / 100
        requests = int(per_minute * share * (until - since) / 60)
        return WindowMetrics(
            requests=requests,
            errors=round(requests * errors),
            latency_p95_ms=latency if requests else None,
            behavior_similarity=0.9 if requests else None,
            compared=requests,
        )

    return traffic


@dataclass
class Sim:
    state: RolloutState
    traffic: Traffic
    now: float = T0
    routes: tuple[Route, ...] = (Route("2", 100),)
    aliases: dict[str, str] = field(default_factory=lambda: {"champion": "2"})
    rejected: str | None = None
    control: Control | None = None
    judgements: list[Judgement] = field(default_factory=list)
    events: list[EventKind] = field(default_factory=list)
    history: list[RolloutState] = field(default_factory=list)

    def observe(self) -> Observation:
        window = None
        if self.state.judgement_due(self.now):
            assert self.state.stage_started_at is not None
            window = self.traffic(self.state.stage, self.state.stage_started_at, self.now)
        return Observation(
            now=self.now,
            routes=self.routes,
            aliases=dict(self.aliases),
            candidate_rejected=self.rejected == self.state.candidate,
            control=self.control,
            window=window,
        )

    def step(self, *, carry_out: bool = True) -> Advance:
        result = advance(self.state, self.observe())
        # Persisted together: the state and the judgement it made.
        self.state = result.state
        self.history.append(result.state)
        if result.judgement is not None:
            self.judgements.append(result.judgement)
        self.events += [e.kind for e in result.events]
        if carry_out:
            for effect in result.effects:
                self.carry_out(effect)
        return result

    def carry_out(self, effect: object) -> None:
        if isinstance(effect, SetRoutes):
            self.routes = effect.routes
        elif isinstance(effect, SetChallenger):
            self.aliases["challenger"] = effect.version
        elif isinstance(effect, ClearControl):
            self.control = None
        elif isinstance(effect, Promote):
            self.routes = (Route(effect.candidate, 100),)
            self.aliases = {"champion": effect.candidate, "previous": effect.champion}
        elif isinstance(effect, RollBack):
            self.rejected = effect.candidate
            self.routes = (Route(effect.champion, 100),)
            self.aliases.pop("challenger", None)

    def run(self, *, limit: int = 500) -> Sim:
        for _ in range(limit):
            result = self.step()
            if result.requeue_after is None:
                return self
            self.now += result.requeue_after
        raise AssertionError(f"no end after {limit} steps: {self.state.message}")

    def judged(self) -> list[tuple[str, AnalysisOutcome]]:
        return [(j.stage, j.outcome) for j in self.judgements]


def new_rollout(spec: Rollout, traffic: Traffic, *, shadow: bool = False) -> Sim:
    begun = start(
        use_case="npc",
        digest="sha256:d",
        candidate="3",
        champion="2",
        strategy=spec.strategy,
        stages=stages_for(spec, steps=spec.traffic_steps, shadow=shadow),
        policy=policy_for(spec),
        now=T0,
    )
    sim = Sim(begun.state, traffic)
    sim.events += [e.kind for e in begun.events]
    return sim


def test_a_good_candidate_walks_every_step_and_is_promoted() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60)).run()
    assert sim.state.phase is Phase.SUCCEEDED
    assert sim.judged() == [(w, AnalysisOutcome.SUCCESSFUL) for w in ("10%", "50%", "100%")]
    assert sim.aliases == {"champion": "3", "previous": "2"}
    assert sim.routes == (Route("3", 100),)
    # Each step baked at least bakeTime on its own window.
    for judgement in sim.judgements:
        assert judgement.window_end - judgement.window_start >= 600
    assert sim.events[0] is EventKind.STARTED and sim.events[-1] is EventKind.PROMOTED


def test_every_judgement_records_value_threshold_sample_and_verdict() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60)).run()
    first = sim.judgements[0]
    by_metric = {m.metric: m for m in first.analysis.measurements}
    error = by_metric[Metric.ERROR_RATE]
    assert (error.value, error.threshold.limit, error.outcome) == (
        0.0,
        0.05,
        AnalysisOutcome.SUCCESSFUL,
    )
    assert error.sample_size == first.analysis.requests == 60  # 10% of 60/min for 10 minutes
    assert by_metric[Metric.LATENCY_P95_MS].value == 100.0


def test_too_little_traffic_keeps_baking_until_enough_arrives_then_passes() -> None:
    rate = {"per_minute": 6.0}  # 10% of 6/min: 6 requests in the 10-minute bake, 20 needed

    def slow_then_busy(stage: Stage, since: float, until: float) -> WindowMetrics:
        return busy(per_minute=rate["per_minute"])(stage, since, until)

    sim = new_rollout(rollout_spec(), slow_then_busy)
    for _ in range(3):  # set routes, see them in place and bake, first judgement
        result = sim.step()
        sim.now += result.requeue_after or 0
    assert sim.judged() == [("10%", AnalysisOutcome.INCONCLUSIVE)]
    assert "waiting for evidence" in sim.state.message
    assert sim.state.phase is Phase.PROGRESSING
    rate["per_minute"] = 60.0  # players arrive
    sim.run()
    outcomes = sim.judged()
    assert outcomes[0] == ("10%", AnalysisOutcome.INCONCLUSIVE)
    assert outcomes[-3:] == [(w, AnalysisOutcome.SUCCESSFUL) for w in ("10%", "50%", "100%")]
    assert sim.state.phase is Phase.SUCCEEDED
    # Judged again at the interval, on the same growing window.
    assert sim.judgements[1].window_start == sim.judgements[0].window_start
    assert sim.judgements[1].window_end - sim.judgements[0].window_end == pytest.approx(60)


def test_no_data_until_the_deadline_pauses_and_the_next_reconcile_tries_again() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=1)).run()
    assert sim.state.phase is Phase.PAUSED
    assert sim.state.pause_reason is PauseReason.NO_DATA
    assert "no evidence by the progress deadline" in sim.state.message
    assert EventKind.PAUSED_NO_DATA in sim.events
    last = sim.judgements[-1]
    assert last.window_end - last.window_start == pytest.approx(3600)  # the whole deadline
    assert all(o is AnalysisOutcome.INCONCLUSIVE for _, o in sim.judged())
    assert sim.aliases["champion"] == "2"  # never a pass
    # The next reconcile: traffic is back, the same stage is tried on a fresh window.
    sim.state = resume_after_no_data(sim.state)
    sim.traffic = busy(per_minute=60)
    sim.run()
    assert sim.state.phase is Phase.SUCCEEDED


def test_no_data_with_on_no_data_fail_rolls_back_at_the_deadline() -> None:
    spec = rollout_spec(
        analysis={"minRequests": 20, "failureLimit": 3, "onNoData": "fail", "interval": "5m"}
    )
    sim = new_rollout(spec, busy(per_minute=0)).run()
    assert sim.state.phase is Phase.ROLLED_BACK
    assert "progress deadline exceeded at 10%" in sim.state.message
    assert "no evidence by the progress deadline" in sim.state.message
    assert sim.rejected == "3" and sim.routes == (Route("2", 100),)
    # Rolled back when the 1h deadline passed, not re-baked for every check of failureLimit.
    assert sim.now - T0 <= 3600 + 60
    assert [j.decision for j in sim.judgements].count("failed: roll back") == 1
    assert sim.state.failures == 1


def test_a_breach_the_missing_requests_cannot_cure_fails_at_the_deadline_not_no_data() -> None:
    # 10% of 1/min over the 1h deadline: 6 requests, short of minRequests 20; half are errors.
    # Even had 14 more clean requests arrived, 3/20 = 0.15 > 0.05: that is a failure, not a
    # pause for lack of data.
    sim = new_rollout(rollout_spec(), busy(per_minute=1, errors=0.5)).run()
    assert sim.state.phase is Phase.ROLLED_BACK
    assert sim.rejected == "3"
    last = sim.judgements[-1]
    assert last.outcome is AnalysisOutcome.FAILED
    assert last.window_end - last.window_start == pytest.approx(3600)  # only at the deadline
    assert all(j.outcome is AnalysisOutcome.INCONCLUSIVE for j in sim.judgements[:-1])
    assert "even had every missing request been clean" in last.analysis.summary
    assert EventKind.PAUSED_NO_DATA not in sim.events


def test_a_rate_the_missing_requests_could_still_cure_stays_no_data() -> None:
    # 1 error in 6 requests: at minRequests 20 with 14 clean ones, 1/20 = 0.05 is not above
    # the 0.05 maximum, so the window proves nothing either way.
    def one_error(stage: Stage, since: float, until: float) -> WindowMetrics:
        window = busy(per_minute=1)(stage, since, until)
        return replace(window, errors=min(1, window.requests))

    sim = new_rollout(rollout_spec(), one_error).run()
    assert sim.state.phase is Phase.PAUSED
    assert sim.state.pause_reason is PauseReason.NO_DATA


def test_a_breach_short_of_min_requests_waits_while_the_deadline_is_ahead() -> None:
    window = WindowMetrics(requests=5, errors=5)
    thresholds = stages_for(rollout_spec(), steps=[10, 50, 100], shadow=False)[0].thresholds
    assert measure(window, thresholds, 20).outcome is AnalysisOutcome.INCONCLUSIVE
    closed = measure(window, thresholds, 20, window_closed=True)
    assert closed.outcome is AnalysisOutcome.FAILED
    by_metric = {m.metric: m.outcome for m in closed.measurements}
    assert by_metric[Metric.ERROR_RATE] is AnalysisOutcome.FAILED
    assert by_metric[Metric.LATENCY_P95_MS] is AnalysisOutcome.INCONCLUSIVE


def test_failure_limit_rolls_back_after_the_second_failed_check() -> None:
    def breaks_at_50(stage: Stage, since: float, until: float) -> WindowMetrics:
        errors = 0.2 if stage.weight >= 50 else 0.0
        return busy(per_minute=60, errors=errors)(stage, since, until)

    sim = new_rollout(rollout_spec(), breaks_at_50).run()
    assert sim.state.phase is Phase.ROLLED_BACK
    assert sim.judged() == [
        ("10%", AnalysisOutcome.SUCCESSFUL),
        ("50%", AnalysisOutcome.FAILED),
        ("50%", AnalysisOutcome.FAILED),
    ]
    assert "analysis failed 2 times at 50%" in sim.state.message
    assert "errorRate 0.2" in sim.state.message and "max 0.05" in sim.state.message
    assert sim.aliases == {"champion": "2"}
    assert sim.routes == (Route("2", 100),)
    assert EventKind.ROLLED_BACK in sim.events
    # The second check baked on a fresh window, not the first one's.
    assert sim.judgements[2].window_start == sim.judgements[1].window_end


def test_progress_deadline_exceeded_rolls_back_before_the_failure_limit() -> None:
    spec = rollout_spec(
        progressDeadline="15m",
        analysis={"metrics": {"errorRate": {"max": 0.05}}, "failureLimit": 5},
    )
    sim = new_rollout(spec, busy(per_minute=600, errors=0.1)).run()
    assert sim.state.phase is Phase.ROLLED_BACK
    assert "progress deadline exceeded at 10%" in sim.state.message
    assert len(sim.judgements) == 2  # failed at 10m, baked again, past the 15m deadline at 20m


def test_operator_pause_holds_until_resume_which_bakes_the_step_again() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60))
    for _ in range(2):  # routes set, then seen in place: baking 10%
        sim.now += (sim.step().requeue_after or 0) / 2
    sim.control = Control.PAUSE
    paused = sim.step()
    assert paused.requeue_after is None and sim.state.phase is Phase.PAUSED
    assert sim.state.pause_reason is PauseReason.OPERATOR and sim.control is None
    sim.now += 7200
    assert sim.step().effects == ()  # nothing moves while paused, however long
    assert resume_after_no_data(sim.state) is sim.state  # a reconcile does not lift it
    sim.control = Control.RESUME
    sim.step()
    assert sim.state.phase is Phase.PROGRESSING and sim.state.stage_started_at is None
    sim.run()
    assert sim.state.phase is Phase.SUCCEEDED


def test_operator_abort_rolls_back_at_once() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60))
    for _ in range(2):  # routes set, then seen in place: baking 10%
        sim.now += (sim.step().requeue_after or 0) / 2
    sim.control = Control.ABORT
    sim.run()
    assert sim.state.phase is Phase.ROLLED_BACK
    assert sim.rejected == "3" and "aborted by an operator" in sim.state.message
    assert sim.judgements == []


def test_operator_promote_skips_the_remaining_steps() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60))
    for _ in range(2):  # routes set, then seen in place: baking 10%
        sim.now += (sim.step().requeue_after or 0) / 2
    sim.control = Control.PROMOTE
    sim.run()
    assert sim.state.phase is Phase.SUCCEEDED and "by an operator" in sim.state.message
    assert sim.aliases["champion"] == "3"
    assert sim.judgements == []


def test_routes_edited_mid_bake_are_set_again_and_the_window_restarts() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60))
    for _ in range(2):  # routes set, then seen in place: baking 10%
        sim.now += (sim.step().requeue_after or 0) / 2
    started = sim.state.stage_started_at
    sim.routes = (Route("2", 100),)  # someone moved the weights by hand
    sim.now += 60
    result = sim.step()
    assert SetRoutes(normalize_routes([Route("2", 90), Route("3", 10)])) in result.effects
    assert sim.state.stage_started_at is None
    sim.step()
    assert sim.state.stage_started_at is not None and sim.state.stage_started_at > (started or 0)


def persisted_states(spec: Rollout, traffic: Traffic) -> list[RolloutState]:
    sim = new_rollout(spec, traffic).run()
    return [sim.history[0], *sim.history]


@pytest.mark.parametrize("effects_lost", [True, False])
def test_a_crash_at_every_persisted_step_resumes_and_never_skips_an_analysis(
    effects_lost: bool,
) -> None:
    """Persist, then crash before (effects lost) or after the effects: resume from the state."""
    spec = rollout_spec()
    reference = new_rollout(spec, busy(per_minute=60)).run()
    assert len(reference.history) > 10
    for crash_at in range(len(reference.history)):
        sim = new_rollout(spec, busy(per_minute=60))
        for _ in range(crash_at):
            sim.now += sim.step().requeue_after or 0
        sim.step(carry_out=not effects_lost)  # the process dies here
        sim.now += 30  # a new process starts a little later, from the persisted state
        sim.run()
        assert sim.state.phase is Phase.SUCCEEDED, (crash_at, sim.state.message)
        passed = {j.stage for j in sim.judgements if j.outcome is AnalysisOutcome.SUCCESSFUL}
        assert passed == {"10%", "50%", "100%"}, crash_at
        final = [j for j in sim.judgements if j.final]
        assert final and final[-1].outcome is AnalysisOutcome.SUCCESSFUL


def test_a_crash_during_the_final_bake_judges_100_percent_before_promoting() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60))
    while not (sim.state.stage.weight == 100 and sim.state.stage_started_at is not None):
        sim.now += sim.step().requeue_after or 0
    assert sim.routes == normalize_routes([Route("3", 100)])  # the routes already show 100%
    saved = RolloutState.from_json(sim.state.as_json())  # what the journal holds
    resumed = Sim(saved, busy(per_minute=60), now=sim.now + 120, routes=sim.routes)
    resumed.aliases = dict(sim.aliases)
    resumed.run()
    assert resumed.judged() == [("100%", AnalysisOutcome.SUCCESSFUL)]
    assert resumed.judgements[0].window_start == saved.stage_started_at
    assert resumed.state.phase is Phase.SUCCEEDED


def test_state_round_trips_through_json() -> None:
    sim = new_rollout(rollout_spec(shadow={"duration": "20m"}), busy(per_minute=60), shadow=True)
    sim.run()
    for state in sim.history:
        assert RolloutState.from_json(state.as_json()) == state


def test_shadow_stage_mirrors_traffic_and_judges_similarity_before_any_player_sees_it() -> None:
    spec = rollout_spec(
        shadow={
            "duration": "20m",
            "minRequests": 50,
            "analysis": {"behaviorSimilarity": {"min": 0.8}, "errorRate": {"max": 0.01}},
        }
    )
    seen: list[tuple[Route, ...]] = []

    def traffic(stage: Stage, since: float, until: float) -> WindowMetrics:
        seen.append(sim.routes)
        return busy(per_minute=60)(stage, since, until)

    sim = new_rollout(spec, traffic, shadow=True)
    sim.run()
    assert sim.state.phase is Phase.SUCCEEDED
    assert sim.judged()[0] == ("shadow", AnalysisOutcome.SUCCESSFUL)
    shadow_judgement = sim.judgements[0]
    assert {m.metric for m in shadow_judgement.analysis.measurements} == {
        Metric.BEHAVIOR_SIMILARITY,
        Metric.ERROR_RATE,
    }
    assert shadow_judgement.window_end - shadow_judgement.window_start >= 1200
    # While in shadow the candidate takes no live traffic, only copies.
    assert seen[0] == normalize_routes([Route("2", 100), Route("3", 100, shadow=True)])


def test_shadow_with_dissimilar_answers_fails_without_touching_live_traffic() -> None:
    spec = rollout_spec(
        shadow={"duration": "20m", "analysis": {"behaviorSimilarity": {"min": 0.95}}}
    )

    live_weights: list[int] = []

    def traffic(stage: Stage, since: float, until: float) -> WindowMetrics:
        live_weights.append(stage.weight)
        return busy(per_minute=60)(stage, since, until)  # similarity 0.9 < 0.95

    sim = new_rollout(spec, traffic, shadow=True).run()
    assert sim.state.phase is Phase.ROLLED_BACK
    assert set(live_weights) == {0}
    assert "behaviorSimilarity 0.9" in sim.state.message


def test_blue_green_previews_on_mirrored_traffic_then_switches_at_once_keeping_the_old_warm() -> (
    None
):
    spec = Rollout.model_validate(
        {
            "strategy": "blueGreen",
            "bakeTime": "10m",
            "progressDeadline": "1h",
            "analysis": {"metrics": {"errorRate": {"max": 0.05}}, "minRequests": 20},
        }
    )
    stages = stages_for(spec, steps=spec.traffic_steps, shadow=True)
    assert [s.kind for s in stages] == [StageKind.PREVIEW, StageKind.POST_PROMOTION]
    routes_seen: list[tuple[Route, ...]] = []

    def traffic(stage: Stage, since: float, until: float) -> WindowMetrics:
        routes_seen.append(sim.routes)
        return busy(per_minute=60)(stage, since, until)

    sim = new_rollout(spec, traffic, shadow=True)
    sim.run()
    assert sim.state.phase is Phase.SUCCEEDED
    assert routes_seen[0] == normalize_routes([Route("2", 100), Route("3", 100, shadow=True)])
    assert routes_seen[1] == normalize_routes(
        [Route("3", 100), Route("2", KEEP_WARM_MIRROR, shadow=True)]
    )
    assert sim.routes == (Route("3", 100),)  # the old champion released after the analysis


def test_blue_green_failing_after_the_switch_rolls_back_to_the_warm_champion() -> None:
    spec = Rollout.model_validate(
        {
            "strategy": "blueGreen",
            "bakeTime": "10m",
            "analysis": {"failureLimit": 1, "metrics": {"errorRate": {"max": 0.05}}},
        }
    )

    def breaks_live(stage: Stage, since: float, until: float) -> WindowMetrics:
        return busy(per_minute=60, errors=0.5 if stage.weight == 100 else 0.0)(stage, since, until)

    sim = new_rollout(spec, breaks_live, shadow=True).run()
    assert sim.state.phase is Phase.ROLLED_BACK
    assert sim.judged() == [
        ("preview", AnalysisOutcome.SUCCESSFUL),
        ("100% (post-promotion)", AnalysisOutcome.FAILED),
    ]
    assert sim.routes == (Route("2", 100),) and sim.aliases["champion"] == "2"


def test_blue_green_with_canary_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="blue-green rollout moves all traffic at once"):
        Rollout.model_validate({"strategy": "blueGreen", "steps": [10, 100]})


def test_a_deadline_shorter_than_the_bake_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than bakeTime"):
        Rollout.model_validate({"bakeTime": "30m", "progressDeadline": "10m"})


def test_challenger_alias_is_set_while_rolling_out() -> None:
    sim = new_rollout(rollout_spec(), busy(per_minute=60))
    sim.step()
    assert sim.aliases.get(Alias.CHALLENGER.value) == "3"


def test_time_scale_scales_bakes_intervals_and_deadlines_alike() -> None:
    spec = rollout_spec(progressDeadline="2h")
    policy = policy_for(spec, scale=0.001)
    stage = stages_for(spec, steps=[10, 100], shadow=False, scale=0.001)[0]
    assert (stage.bake_seconds, policy.interval_seconds, policy.deadline_seconds) == (
        pytest.approx(0.6),
        pytest.approx(0.06),
        pytest.approx(7.2),
    )
    # So a scaled rollout with no traffic does reach its deadline, in scaled time.
    begun = start(
        use_case="npc",
        digest="d",
        candidate="3",
        champion="2",
        strategy=spec.strategy,
        stages=stages_for(spec, steps=[10, 100], shadow=False, scale=0.001),
        policy=policy,
        now=T0,
    )
    sim = Sim(begun.state, busy(per_minute=0)).run()
    assert sim.state.phase is Phase.PAUSED and sim.now - T0 < 10
