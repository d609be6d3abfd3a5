"""What each planned action does, one function per action, reading the change's typed payload.

Register, train and evaluate go through the model builder (idempotent on the use case's
keys); promote and plain shifts move aliases and routes; a shift with a rollout hands over to
the rollout driver; rollback restores the champion and rejects the candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler import lineage
from reconciler.apply import aliases
from reconciler.apply.context import StepResult, UseCaseRun
from reconciler.apply.journal import Cause
from reconciler.apply.preconditions import MadeVersions
from reconciler.apply.rollout_driver import drive_rollout, settle_interrupted_promotion
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.lineage import Alias
from reconciler.plan.model import (
    Action,
    Change,
    EvaluateChange,
    PromoteChange,
    RegisterChange,
    RollbackChange,
    ShiftChange,
    TrainChange,
)


class ChangeFailedError(ReconcilerError):
    """A change could not be carried out; the use case stops here."""


class StaleChangeError(TemporaryError):
    """The world moved since the plan was made: a fresh plan will know."""


def made(run: UseCaseRun) -> MadeVersions:
    return MadeVersions(candidate=run.candidate, base=run.base)


def version_with_key(run: UseCaseRun, key: str) -> str | None:
    model = run.model()
    found = model.find_by_key(key) if model else None
    return found.version if found else None


def _register(run: UseCaseRun, change: RegisterChange) -> StepResult:
    run.base = run.context.builder.register_base(run.use_case, run.identity)
    if not run.identity.trains:
        run.candidate = run.base
    run.say(f"base registered as version {run.base}")
    return StepResult.DONE


def _train(run: UseCaseRun, change: TrainChange) -> StepResult:
    base = run.base or version_with_key(run, run.identity.base_key)
    if base is None:
        raise StaleChangeError("the base version is missing; plan again")
    run.candidate = run.context.builder.train(run.use_case, run.identity, base)
    run.say(f"trained version {run.candidate}")
    return StepResult.DONE


def _evaluate(run: UseCaseRun, change: EvaluateChange) -> StepResult:
    candidate = run.candidate or version_with_key(run, run.identity.target_key)
    if candidate is None:
        raise StaleChangeError("the candidate version is missing; plan again")
    model = run.model()
    champion = model.aliases.get(Alias.CHAMPION.value) if model else None
    if champion is not None and (model is None or model.version(champion) is None):
        champion = None
    outcome = run.context.builder.evaluate(run.use_case, run.identity, candidate, champion)
    run.candidate = outcome.candidate
    if not outcome.passed:
        raise ChangeFailedError(
            f"candidate {outcome.candidate} failed evaluation: {outcome.reason}"
        )
    run.say(f"candidate {outcome.candidate} passed evaluation")
    return StepResult.DONE


def _promote(run: UseCaseRun, change: PromoteChange) -> StepResult:
    wanted = made(run).aliases(change.after.aliases)
    if change.after.requires_analysis:
        candidate = wanted.get(Alias.CHAMPION)
        champion = made(run).resolve(change.before.aliases.get(Alias.CHAMPION))
        if candidate is None or champion is None:
            raise ChangeFailedError("the promotion names no candidate or champion; plan again")
        aliases.promote(run, candidate=candidate, champion=champion)
        return StepResult.DONE
    cause = Cause.DRIFT if change.drift else Cause.COMMIT
    aliases.set_aliases(run, {a.value: v for a, v in wanted.items()}, cause=cause)
    if change.drift:
        run.say("drift healed: aliases restored")
    # Healing a leftover challenger or a champion the record says was moved: what a crash in
    # the middle of a promotion leaves. The rollout it belonged to is closed here.
    settle_interrupted_promotion(run)
    return StepResult.DONE


def _shift(run: UseCaseRun, change: ShiftChange) -> StepResult:
    versions = made(run)
    rollout = change.after.rollout
    if rollout is not None:
        candidate = versions.resolve(rollout.candidate)
        champion = versions.resolve(rollout.champion)
        if candidate is None or champion is None:
            raise ChangeFailedError("the rollout names no candidate or champion; plan again")
        return drive_rollout(
            run,
            candidate=candidate,
            champion=champion,
            steps=rollout.steps,
            shadow=rollout.shadow,
        )
    routes = versions.routes(change.after.routes)
    aliases.write_routes(run, routes)
    run.say("routes set: " + ", ".join(f"{r.version}={r.weight}%" for r in routes))
    return StepResult.DONE


def _rollback(run: UseCaseRun, change: RollbackChange) -> StepResult:
    model = run.model()
    rejected = change.after.rejected
    version = model.version(rejected) if model else None
    reason = (version.tag(lineage.REJECTED) if version else None) or "rejected"
    restore = change.after.aliases.get(Alias.CHAMPION)
    if restore is None:
        raise ChangeFailedError("the rollback names no version to restore; plan again")
    aliases.rollback(run, restore=restore, rejected=rejected, reason=reason)
    return StepResult.DONE


ACTIONS: dict[Action, Callable[[UseCaseRun, Any], StepResult]] = {
    Action.REGISTER: _register,
    Action.TRAIN: _train,
    Action.EVALUATE: _evaluate,
    Action.PROMOTE: _promote,
    Action.SHIFT: _shift,
    Action.ROLLBACK: _rollback,
}


def carry_out(run: UseCaseRun, change: Change) -> StepResult:
    return ACTIONS[change.action](run, change)
