"""The rollout as a re-entrant step machine: `advance(state, observation) -> Advance`.

Pure: nothing here sleeps, reads a clock or does I/O. The caller observes (time, routes,
aliases, the operator's control, and - when `state.judgement_due(now)` - the window's
metrics), calls `advance`, persists the new state, carries out the effects, and calls again
after `requeue_after` seconds (`None`: nothing to do until an operator or the next reconcile).
Effects are idempotent and re-derived from the state and the observation on every call, so a
crash between any two of these steps is repaired by the next call: routes that did not take
effect are written again, a promotion or rollback half done is finished.

Rules, after Argo Rollouts and Flagger:
- `bakeTime` is the least time at a stage; its window starts when its routes are seen in place.
- A window short of evidence (fewer than `minRequests`, or a metric that cannot be measured)
  is Inconclusive, never a pass: the stage keeps baking and is judged again every `interval`
  until there is enough evidence or the stage's `progressDeadline` passes; only then does
  `onNoData` decide: pause (the next reconcile tries the stage again) or count a failure.
- A failed judgement counts towards `failureLimit` and re-bakes the stage on a fresh window;
  at the limit, or past the deadline, the rollout rolls back.
- Promotion is earned: a passed analysis at the last stage, or an operator's `promote`.
- Operator controls: pause (until resume), resume (re-bakes the stage), abort (roll back),
  promote (skip the remaining stages).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.lineage import Alias
from reconciler.observe.state import Route, normalize_routes
from reconciler.rollout.analysis import NO_TRAFFIC, AnalysisOutcome, WindowMetrics, measure
from reconciler.rollout.stages import RolloutPolicy, Stage
from reconciler.rollout.state import (
    Control,
    Judgement,
    PauseReason,
    Phase,
    PromotionBasis,
    RolloutState,
)
from reconciler.spec.model import NoDataPolicy, RolloutStrategy


@dataclass(frozen=True)
class Observation:
    now: float
    routes: tuple[Route, ...]  # the use case's routes as they are, live and shadow
    aliases: Mapping[str, str]
    candidate_rejected: bool = False
    control: Control | None = None
    window: WindowMetrics | None = None  # the current stage's window, when a judgement is due


# --- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetRoutes:
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class SetChallenger:
    version: str


@dataclass(frozen=True)
class ClearControl:
    control: Control


@dataclass(frozen=True)
class Promote:
    candidate: str
    champion: str
    basis: PromotionBasis


@dataclass(frozen=True)
class RollBack:
    candidate: str
    champion: str
    reason: str


Effect = SetRoutes | SetChallenger | ClearControl | Promote | RollBack


class EventKind(enum.StrEnum):
    STARTED = "rollout-started"
    STAGE_PASSED = "step-passed"
    ANALYSIS_FAILED = "analysis-failed"
    PAUSED = "paused"
    PAUSED_NO_DATA = "paused-no-data"
    RESUMED = "resumed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    message: str


@dataclass(frozen=True)
class Advance:
    """One step: the state to persist - with the judgement it made, in the same write, so no
    judgement is ever lost or a stage passed without one - then the effects to carry out."""

    state: RolloutState
    effects: tuple[Effect, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None  # None: wait for an operator or the next reconcile
    judgement: Judgement | None = None


def start(
    *,
    use_case: str,
    digest: str,
    candidate: str,
    champion: str,
    strategy: RolloutStrategy,
    stages: tuple[Stage, ...],
    policy: RolloutPolicy,
    now: float,
) -> Advance:
    if not stages:
        raise ValueError("a rollout needs at least one stage")
    state = RolloutState(
        use_case=use_case,
        digest=digest,
        candidate=candidate,
        champion=champion,
        strategy=strategy,
        stages=stages,
        policy=policy,
        started_at=now,
        message=f"starting: {' → '.join(s.label for s in stages)}",
    )
    walk = " → ".join(s.label for s in stages)
    event = Event(EventKind.STARTED, f"{candidate} against champion {champion}: {walk}")
    return Advance(state, events=(event,), requeue_after=0.0)


def advance(state: RolloutState, observed: Observation) -> Advance:
    if state.phase.terminal:
        return Advance(state)
    if observed.control is not None:
        obeyed = _obey(state, observed.control)
        if obeyed is not None:
            return obeyed
    if state.phase is Phase.PAUSED:
        return Advance(state)
    if state.phase is Phase.PROMOTING:
        return _promoting(state, observed)
    if state.phase is Phase.ROLLING_BACK:
        return _rolling_back(state, observed)
    return _progressing(state, observed)


def resume_after_no_data(state: RolloutState) -> RolloutState:
    """A new reconcile tries a stage paused for lack of evidence again, on a fresh window."""
    if state.phase is not Phase.PAUSED or state.pause_reason is not PauseReason.NO_DATA:
        return state
    return state.evolve(
        phase=Phase.PROGRESSING,
        pause_reason=None,
        stage_started_at=None,
        stage_entered_at=None,
        next_judgement_at=None,
        message=f"trying {state.stage.label} again after a pause for lack of traffic",
    )


# --- operator controls -----------------------------------------------------------------------


def _obey(state: RolloutState, control: Control) -> Advance | None:
    clear = ClearControl(control)
    if control is Control.ABORT:
        if state.phase is Phase.ROLLING_BACK:
            return Advance(state, (clear,), requeue_after=0.0)
        rolled = state.evolve(phase=Phase.ROLLING_BACK, message="aborted by an operator")
        return Advance(rolled, (clear,), requeue_after=0.0)
    if control is Control.PROMOTE:
        if state.phase in (Phase.PROMOTING, Phase.ROLLING_BACK):
            return Advance(state, (clear,), requeue_after=0.0)
        promoted = state.evolve(
            phase=Phase.PROMOTING,
            promoted_by=PromotionBasis.OPERATOR,
            pause_reason=None,
            message="promoted by an operator: skipping the remaining stages",
        )
        return Advance(promoted, (clear,), requeue_after=0.0)
    if control is Control.PAUSE:
        if state.phase in (Phase.PROGRESSING, Phase.PAUSED):
            paused = state.evolve(
                phase=Phase.PAUSED,
                pause_reason=PauseReason.OPERATOR,
                message=f"paused by an operator at {state.stage.label}; "
                "`reconciler resume` to continue",
            )
            event = Event(EventKind.PAUSED, paused.message)
            return Advance(paused, (clear,), (event,))
        # Finishing a promotion or a rollback is safer than stopping half way.
        return Advance(state, (clear,), requeue_after=0.0)
    if state.phase is Phase.PAUSED:  # resume
        resumed = state.evolve(
            phase=Phase.PROGRESSING,
            pause_reason=None,
            stage_started_at=None,
            stage_entered_at=None,
            next_judgement_at=None,
            message=f"resumed by an operator: baking {state.stage.label} again",
        )
        return Advance(resumed, (clear,), (Event(EventKind.RESUMED, resumed.message),), 0.0)
    return Advance(state, (clear,), requeue_after=0.0)


# --- progressing -----------------------------------------------------------------------------


def _progressing(state: RolloutState, observed: Observation) -> Advance:
    now, stage = observed.now, state.stage
    effects: list[Effect] = []
    if observed.aliases.get(Alias.CHALLENGER.value) != state.candidate:
        effects.append(SetChallenger(state.candidate))
    wanted = stage.routes(state.champion, state.candidate)
    if normalize_routes(list(observed.routes)) != wanted:
        # Level-triggered: whatever the routes are (a crash, a hand edit), set them, and start
        # the window only once they are seen in place.
        waiting = state.evolve(
            stage_started_at=None,
            next_judgement_at=None,
            message=f"setting the routes of {_step_name(state)}",
        )
        return Advance(waiting, (*effects, SetRoutes(wanted)), requeue_after=0.0)
    if state.stage_started_at is None:
        started = state.evolve(
            stage_started_at=now,
            stage_entered_at=now if state.stage_entered_at is None else state.stage_entered_at,
            message=f"{_step_name(state)}: baking {_seconds(stage.bake_seconds)}",
        )
        return Advance(started, tuple(effects), requeue_after=stage.bake_seconds)
    if not state.judgement_due(now):
        due = max(state.stage_started_at + stage.bake_seconds, state.next_judgement_at or 0.0)
        return Advance(state, tuple(effects), requeue_after=max(0.0, due - now))
    return _judge(state, observed, tuple(effects))


def _judge(state: RolloutState, observed: Observation, effects: tuple[Effect, ...]) -> Advance:
    now, stage, policy = observed.now, state.stage, state.policy
    assert state.stage_started_at is not None
    deadline = state.stage_deadline or now
    analysis = measure(
        observed.window or NO_TRAFFIC,
        stage.thresholds,
        stage.min_requests,
        window_closed=now >= deadline,
    )
    name = _step_name(state)

    def judged(decision: str) -> Judgement:
        return Judgement(
            use_case=state.use_case,
            digest=state.digest,
            candidate=state.candidate,
            champion=state.champion,
            stage=stage.label,
            weight=stage.weight,
            final=state.on_last_stage,
            window_start=state.stage_started_at or now,
            window_end=now,
            analysis=analysis,
            decision=decision,
        )

    if analysis.outcome is AnalysisOutcome.SUCCESSFUL:
        if state.on_last_stage:
            decision = "passed: promote"
            nxt = state.evolve(
                phase=Phase.PROMOTING,
                promoted_by=PromotionBasis.ANALYSIS,
                message=f"{name} passed: promoting {state.candidate}",
            )
        else:
            decision = "passed: next stage"
            nxt = state.evolve(
                stage_index=state.stage_index + 1,
                stage_started_at=None,
                stage_entered_at=None,
                next_judgement_at=None,
                message=f"{name} passed",
            )
        judgement = judged(decision)
        event = Event(EventKind.STAGE_PASSED, f"{name}: {analysis.summary}")
        return _with(nxt, judgement, effects, (event,), 0.0)

    if analysis.outcome is AnalysisOutcome.INCONCLUSIVE and now < deadline:
        again = min(now + policy.interval_seconds, deadline)
        judgement = judged("waiting for evidence")
        nxt = state.evolve(
            next_judgement_at=again,
            message=f"{name}: waiting for evidence ({analysis.summary}); judged again in "
            f"{_seconds(again - now)}, deadline in {_seconds(deadline - now)}",
        )
        return _with(nxt, judgement, effects, (), again - now)

    if analysis.outcome is AnalysisOutcome.INCONCLUSIVE and policy.on_no_data is NoDataPolicy.PAUSE:
        judgement = judged("no evidence by the deadline: paused")
        nxt = state.evolve(
            phase=Phase.PAUSED,
            pause_reason=PauseReason.NO_DATA,
            message=f"{name}: no evidence by the progress deadline ({analysis.summary}); "
            "paused until the next reconcile",
        )
        event = Event(EventKind.PAUSED_NO_DATA, nxt.message)
        return _with(nxt, judgement, effects, (event,), None)

    # Failed, or inconclusive at the deadline with `onNoData: fail`: a failed check.
    failures = state.failures + 1
    what = (
        analysis.summary
        if analysis.outcome is AnalysisOutcome.FAILED
        else f"no evidence by the progress deadline ({analysis.summary})"
    )
    # Past the deadline nothing is baked again, whatever the failure limit: a stage that has
    # not passed by then (failing, or silent with `onNoData: fail`) has run out of time.
    if failures >= policy.failure_limit or now >= deadline:
        why = (
            f"analysis failed {failures} time{'s' if failures > 1 else ''} at {stage.label}"
            if failures >= policy.failure_limit
            else f"progress deadline exceeded at {stage.label}"
        )
        judgement = judged("failed: roll back")
        nxt = state.evolve(phase=Phase.ROLLING_BACK, failures=failures, message=f"{why}: {what}")
        event = Event(EventKind.ANALYSIS_FAILED, nxt.message)
        return _with(nxt, judgement, effects, (event,), 0.0)
    judgement = judged(f"failed check {failures} of {policy.failure_limit}: bake again")
    nxt = state.evolve(
        failures=failures,
        stage_started_at=now,
        next_judgement_at=None,
        message=f"{name}: failed check {failures} of {policy.failure_limit} ({what}); baking again",
    )
    event = Event(EventKind.ANALYSIS_FAILED, nxt.message)
    return _with(nxt, judgement, effects, (event,), state.stage.bake_seconds)


def _with(
    state: RolloutState,
    judgement: Judgement,
    effects: tuple[Effect, ...],
    events: tuple[Event, ...],
    requeue_after: float | None,
) -> Advance:
    return Advance(
        state.evolve(last_judgement=judgement), effects, events, requeue_after, judgement
    )


# --- finishing -------------------------------------------------------------------------------


def _promoting(state: RolloutState, observed: Observation) -> Advance:
    aliases = observed.aliases
    done = (
        aliases.get(Alias.CHAMPION.value) == state.candidate
        and aliases.get(Alias.CHALLENGER.value) is None
        and normalize_routes(list(observed.routes)) == (Route(state.candidate, 100),)
    )
    if done:
        how = "an operator" if state.promoted_by is PromotionBasis.OPERATOR else "analysis"
        nxt = state.evolve(
            phase=Phase.SUCCEEDED,
            message=f"{state.candidate} promoted to champion (by {how}); "
            f"{state.champion} is previous",
        )
        return Advance(nxt, events=(Event(EventKind.PROMOTED, nxt.message),))
    basis = state.promoted_by or PromotionBasis.ANALYSIS
    return Advance(state, (Promote(state.candidate, state.champion, basis),), requeue_after=0.0)


def _rolling_back(state: RolloutState, observed: Observation) -> Advance:
    aliases = observed.aliases
    done = (
        observed.candidate_rejected
        and aliases.get(Alias.CHAMPION.value) == state.champion
        and aliases.get(Alias.CHALLENGER.value) != state.candidate
        and normalize_routes(list(observed.routes)) == (Route(state.champion, 100),)
    )
    if done:
        nxt = state.evolve(
            phase=Phase.ROLLED_BACK,
            message=f"rolled back to {state.champion}; {state.candidate} rejected: {state.message}",
        )
        return Advance(nxt, events=(Event(EventKind.ROLLED_BACK, nxt.message),))
    effect = RollBack(state.candidate, state.champion, state.message)
    return Advance(state, (effect,), requeue_after=0.0)


def _step_name(state: RolloutState) -> str:
    return f"stage {state.stage_index + 1}/{len(state.stages)} ({state.stage.label})"


def _seconds(value: float) -> str:
    value = max(0.0, value)
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    return f"{value:.1f}s"
