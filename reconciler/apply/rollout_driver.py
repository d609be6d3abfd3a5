"""Drives the rollout machine against the world: observe, advance, persist, carry out.

`apply` drives a rollout to an end - promoted, rolled back, or paused - waiting on the
injected clock between steps (in chunks, so an operator's control is obeyed within seconds
even during a half-hour bake). The controller advances it once per cycle and goes on; the
machine says when it wants to be called again. Either way the state is persisted after every
step, before its effects, so the next process - after a crash, a pause, a controller restart -
resumes it exactly: a stage whose analysis has not passed is baked and judged again, whatever
the routes show.
"""

from __future__ import annotations

from reconciler import lineage
from reconciler.apply import aliases
from reconciler.apply.context import StepResult, UseCaseRun
from reconciler.apply.journal import Cause
from reconciler.errors import ReconcilerError
from reconciler.lineage import Alias
from reconciler.notifications.rollouts import rollout_notification
from reconciler.rollout.analysis import NO_TRAFFIC, WindowMetrics
from reconciler.rollout.machine import (
    Advance,
    ClearControl,
    Effect,
    Event,
    Observation,
    Promote,
    RollBack,
    SetChallenger,
    SetRoutes,
    advance,
    resume_after_no_data,
    start,
)
from reconciler.rollout.stages import policy_for, stages_for
from reconciler.rollout.state import Phase, RolloutState

# Steps that ask to be run again at once (write routes, see them) must settle quickly; more
# than this in a row means an effect does not take, which is an error, not a reason to spin.
_MAX_IMMEDIATE_STEPS = 50

_RESULTS = {
    Phase.SUCCEEDED: StepResult.DONE,
    Phase.ROLLED_BACK: StepResult.DEGRADED,
    Phase.PAUSED: StepResult.SUSPENDED,
}


class RolloutStuckError(ReconcilerError):
    """The rollout's effects do not take effect (routes or aliases keep reverting)."""


def drive_rollout(
    run: UseCaseRun,
    *,
    candidate: str,
    champion: str,
    steps: list[int],
    shadow: bool,
) -> StepResult:
    state = _resume_or_start(run, candidate, champion, steps, shadow)
    immediate = 0
    while True:
        result = _step(run, state)
        state = result.state
        if result.requeue_after is None:
            break
        if result.requeue_after <= 0:
            # Steps that need no wait (write the routes, see them, promote) run at once,
            # also for a controller: it never leaves a rollout half promoted.
            immediate += 1
            if immediate > _MAX_IMMEDIATE_STEPS:
                raise RolloutStuckError(
                    f"the rollout of {candidate} made no progress in {immediate} steps "
                    f"({state.message}); are the routes or aliases being changed meanwhile?"
                )
            continue
        immediate = 0
        if not run.context.drive_rollouts:
            run.requeue_after = result.requeue_after
            return StepResult.PROGRESSING
        _wait(run, result.requeue_after)
    return _RESULTS.get(state.phase, StepResult.PROGRESSING)


def settle_interrupted_promotion(run: UseCaseRun) -> None:
    """Close a rollout whose promotion a crash cut short, once its writes are complete.

    The plan shows such a promotion as a leftover challenger alias or a champion the record
    says was moved; after that change the machine finishes the promotion it had earned and
    records the rollout as succeeded (with its event), instead of it staying `Promoting`.
    """
    state = run.context.journal.rollout(run.name)
    if state is None or state.phase is not Phase.PROMOTING or state.digest != run.identity.digest:
        return
    for _ in range(_MAX_IMMEDIATE_STEPS):
        result = _step(run, state)
        state = result.state
        if result.requeue_after != 0:
            return
    raise RolloutStuckError(f"the promotion of {state.candidate} does not take effect")


def _wait(run: UseCaseRun, seconds: float) -> None:
    """Wait until the machine wants to be called again, or an operator asks something."""
    clock, journal = run.context.clock, run.context.journal
    until = clock.monotonic() + seconds
    while (remaining := until - clock.monotonic()) > 0:
        clock.sleep(min(remaining, run.context.control_poll_seconds))
        if journal.pending_control(run.name) is not None:
            return


def _resume_or_start(
    run: UseCaseRun, candidate: str, champion: str, steps: list[int], shadow: bool
) -> RolloutState:
    context = run.context
    saved = context.journal.rollout(run.name)
    digest = run.identity.digest
    if (
        saved is not None
        and saved.active
        and saved.same_rollout(digest=digest, candidate=candidate, champion=champion)
    ):
        state = resume_after_no_data(saved)
        if state is not saved:
            context.journal.save_rollout(state)
        run.say(f"resuming the rollout of {candidate}: {state.message}")
        return state
    spec = run.use_case.spec.rollout
    begun = start(
        use_case=run.name,
        digest=digest,
        candidate=candidate,
        champion=champion,
        strategy=spec.strategy,
        stages=stages_for(spec, steps=steps, shadow=shadow, scale=context.time_scale),
        policy=policy_for(spec, scale=context.time_scale),
        now=context.clock.now(),
    )
    context.journal.save_rollout(begun.state)
    for event in begun.events:
        run.say(f"rollout started: {event.message}")
        _notify(run, event, begun.state)
    return begun.state


def _step(run: UseCaseRun, state: RolloutState) -> Advance:
    context = run.context
    model = run.model()
    candidate = model.version(state.candidate) if model else None
    rejected = candidate is not None and (
        candidate.tag(lineage.REJECTED) is not None
        and candidate.tag(lineage.REJECTED_DIGEST) == state.digest
    )
    now = context.clock.now()
    observed = Observation(
        now=now,
        routes=run.traffic().routes,
        aliases=dict(model.aliases) if model else {},
        candidate_rejected=rejected,
        control=context.journal.pending_control(run.name),
        window=_window(run, state, now) if state.judgement_due(now) else None,
    )
    result = advance(state, observed)
    if result.state != state or result.judgement is not None:
        context.journal.save_rollout(result.state, result.judgement)
    if state.active and not result.state.active:
        # A control this rollout did not obey ends with it: never one for the next candidate,
        # and recorded as dropped, so the operator who asked is not told it was done.
        obeyed = {e.control for e in result.effects if isinstance(e, ClearControl)}
        pending = context.journal.pending_control(run.name)
        if pending is not None and pending not in obeyed:
            context.journal.clear_control(
                run.name,
                dropped=f"the rollout of {state.candidate} ended "
                f"({result.state.phase.value}: {result.state.message}) before it obeyed",
            )
    if result.judgement is not None:
        judgement = result.judgement
        details = "; ".join(m.describe() for m in judgement.analysis.measurements)
        run.say(
            f"analysis at {judgement.stage}: {judgement.analysis.summary}"
            + (f" [{details}]" if details else "")
        )
    for event in result.events:
        run.say(event.message)
        _notify(run, event, result.state)
    for effect in result.effects:
        _carry_out(run, effect)
    return result


def _notify(run: UseCaseRun, event: Event, state: RolloutState) -> None:
    # After the state that made the event is persisted: a receiver never hears of a step
    # the next process would not resume from.
    notification = rollout_notification(
        event.kind.value, event.message, state, at=run.context.clock.now()
    )
    run.context.notifier.notify(notification)


def _window(run: UseCaseRun, state: RolloutState, now: float) -> WindowMetrics:
    metrics = run.context.metrics
    if metrics is None or state.stage_started_at is None:
        return NO_TRAFFIC
    mirrored = state.stage.on_mirrored_traffic
    return metrics.window(
        run.name,
        state.candidate,
        since=state.stage_started_at,
        until=now,
        mirrored=mirrored,
        compare_with=state.champion if mirrored else None,
    )


def _carry_out(run: UseCaseRun, effect: Effect) -> None:
    if isinstance(effect, SetRoutes):
        aliases.write_routes(run, effect.routes)
        shown = ", ".join(
            f"{r.version}={r.weight}%{' (mirrored)' if r.shadow else ''}" for r in effect.routes
        )
        run.say(f"routes set: {shown}")
    elif isinstance(effect, SetChallenger):
        aliases.set_aliases(run, {Alias.CHALLENGER.value: effect.version}, cause=Cause.COMMIT)
    elif isinstance(effect, ClearControl):
        run.context.journal.clear_control(run.name, effect.control)
    elif isinstance(effect, Promote):
        aliases.promote(run, candidate=effect.candidate, champion=effect.champion)
    elif isinstance(effect, RollBack):
        aliases.rollback(
            run, restore=effect.champion, rejected=effect.candidate, reason=effect.reason
        )
