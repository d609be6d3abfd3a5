"""Progressive traffic shift with analysis (Flagger / Argo Rollouts semantics).

For each remaining step: set the weights, bake, read the window's metrics for the candidate
and judge them. A failed check does not advance the step; `failureLimit` failed checks roll
back. A window without enough traffic is inconclusive: `onNoData: pause` suspends the rollout
(the next apply retries the same step), `fail` counts a failed check. The progress deadline
rolls back. Operators steer through the journal's controls: pause, resume, abort, promote
(skip ahead). After every judged step the highest weight that passed is saved, so a crash or
a pause resumes with the first step above it: a step is never skipped without a passing
analysis, whatever weights the next plan starts from.
"""

from __future__ import annotations

import sys

from reconciler.apply.aliases import rollback, set_aliases, write_routes
from reconciler.apply.analysis import CheckResult, judge
from reconciler.apply.journal import Cause, Control, RolloutProgress
from reconciler.apply.run import StepResult, UseCaseRun
from reconciler.lineage import Alias
from reconciler.observe.state import Route
from reconciler.spec.durations import duration_seconds
from reconciler.spec.model import NoDataPolicy

_CONTROL_POLL_SECONDS = 5.0


def _bake(run: UseCaseRun, seconds: float, label: str) -> Control | None:
    """Wait out the bake time, returning early when an operator asks for something.

    On a terminal a progress bar counts the bake down in rollout time.
    """
    from tqdm.auto import tqdm

    clock, journal = run.context.clock, run.context.journal
    remaining = seconds
    with tqdm(
        total=round(seconds),
        desc=f"{run.name}: bake {label}",
        unit="s",
        leave=False,
        disable=not sys.stderr.isatty(),
    ) as bar:
        while remaining > 0:
            chunk = min(remaining, _CONTROL_POLL_SECONDS)
            clock.sleep(chunk)
            remaining -= chunk
            bar.update(round(seconds - remaining) - bar.n)
            control = journal.pending_control(run.name)
            if control in (Control.ABORT, Control.PAUSE, Control.PROMOTE):
                return control
    return None


def _resume_point(run: UseCaseRun, champion: str, candidate: str) -> RolloutProgress:
    saved = run.context.journal.rollout(run.name)
    if saved and (saved.candidate, saved.champion, saved.digest) == (
        candidate,
        champion,
        run.identity.digest,
    ):
        return saved
    return RolloutProgress(
        run.name, run.identity.digest, candidate, champion, 0, 0, run.context.clock.now()
    )


def _obey(
    run: UseCaseRun, control: Control, progress: RolloutProgress, *, champion: str, candidate: str
) -> StepResult | None:
    """Carry out an operator's control received while baking; None means go on promoting."""
    journal = run.context.journal
    if control is Control.ABORT:
        journal.clear_control(run.name)
        rollback(run, restore=champion, rejected=candidate, reason="aborted by an operator")
        return StepResult.DEGRADED
    if control is Control.PAUSE:
        journal.save_rollout(progress)
        run.say("paused by an operator")
        return StepResult.SUSPENDED
    journal.clear_control(run.name)
    run.say("promoted by an operator: skipping the remaining steps")
    write_routes(run, [Route(candidate, 100)])
    return None


def progressive_shift(
    run: UseCaseRun, *, champion: str, candidate: str, steps: list[int]
) -> StepResult:
    journal, clock = run.context.journal, run.context.clock
    rollout_spec = run.use_case.spec.rollout
    control = journal.pending_control(run.name)
    if control is Control.PAUSE:
        run.say("rollout is paused by an operator; `reconciler resume` to continue")
        return StepResult.SUSPENDED
    if control is Control.RESUME:
        journal.clear_control(run.name)

    progress = _resume_point(run, champion, candidate)
    set_aliases(run, {Alias.CHALLENGER.value: candidate}, cause=Cause.COMMIT)
    deadline = progress.started_at + duration_seconds(rollout_spec.progress_deadline)
    bake_seconds = duration_seconds(rollout_spec.bake_time)
    analysis = rollout_spec.analysis
    passed, failures = progress.passed_weight, progress.failures
    todo = [s for s in steps if s > passed]
    step = 0

    while step < len(todo):
        weight = todo[step]
        write_routes(run, [Route(champion, 100 - weight), Route(candidate, weight)])
        run.say(
            f"step {step + 1}/{len(todo)}: {candidate} at {weight}%, bake {rollout_spec.bake_time}"
        )
        window_start = clock.now()
        control = _bake(run, bake_seconds, f"{weight}%")
        if control is not None:
            paused = _at(progress, passed, failures, "paused by an operator")
            outcome = _obey(run, control, paused, champion=champion, candidate=candidate)
            if outcome is not None:
                return outcome
            break
        metrics = (
            run.context.metrics.window(run.name, window_start, clock.now())
            if run.context.metrics
            else {}
        )
        verdict = judge(metrics.get(candidate), analysis)
        run.say(f"analysis at {weight}%: {verdict.summary}")
        if verdict.result is CheckResult.NO_DATA and analysis.on_no_data is NoDataPolicy.PAUSE:
            journal.save_rollout(_at(progress, passed, failures, verdict.summary))
            run.say("no traffic to judge: rollout paused (inconclusive, never a pass)")
            return StepResult.SUSPENDED
        if verdict.result is CheckResult.PASS:
            passed = weight
            step += 1
        else:
            failures += 1
            if failures >= analysis.failure_limit:
                reason = f"analysis failed {failures} times at {weight}%: {verdict.summary}"
                rollback(run, restore=champion, rejected=candidate, reason=reason)
                return StepResult.DEGRADED
        if clock.now() > deadline:
            reason = f"progress deadline {rollout_spec.progress_deadline} exceeded"
            rollback(run, restore=champion, rejected=candidate, reason=reason)
            return StepResult.DEGRADED
        journal.save_rollout(_at(progress, passed, failures, None))
    journal.clear_rollout(run.name)
    return StepResult.DONE


def _at(
    progress: RolloutProgress, passed_weight: int, failures: int, paused: str | None
) -> RolloutProgress:
    return RolloutProgress(
        progress.use_case,
        progress.digest,
        progress.candidate,
        progress.champion,
        passed_weight,
        failures,
        progress.started_at,
        paused,
    )
