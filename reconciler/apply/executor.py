"""The executor: carry out a plan's changes for one use case, in order, never re-diffing.

Each change is checked against a fresh observation first (`preconditions`): done changes are
skipped, stale ones stop the use case with a message to plan again. Every change is journaled.
A failure ends the use case's run as Degraded with the reason; other use cases go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler import lineage
from reconciler.apply import aliases, rollout
from reconciler.apply.journal import Cause, OperationStatus
from reconciler.apply.preconditions import Precondition, check, resolve, routes_of
from reconciler.apply.run import ApplyContext, StepResult, UseCaseRun
from reconciler.errors import ReconcilerError
from reconciler.health import Health
from reconciler.plan.model import Action, Change


@dataclass(frozen=True)
class UseCaseOutcome:
    use_case: str
    health: Health
    message: str


class ChangeFailedError(ReconcilerError):
    """A change could not be carried out; the use case stops here."""


def _register(run: UseCaseRun, change: Change) -> StepResult:
    run.base = run.context.builder.register_base(run.use_case, run.identity)
    if not run.identity.trains:
        run.candidate = run.base
    run.say(f"base registered as version {run.base}")
    return StepResult.DONE


def _train(run: UseCaseRun, change: Change) -> StepResult:
    base = run.base or _version_with_key(run, run.identity.base_key)
    if base is None:
        raise ChangeFailedError("the base version is missing; plan again")
    run.candidate = run.context.builder.train(run.use_case, run.identity, base)
    run.say(f"trained version {run.candidate}")
    return StepResult.DONE


def _evaluate(run: UseCaseRun, change: Change) -> StepResult:
    candidate = _candidate(run)
    model = run.model()
    champion = model.aliases.get("champion") if model else None
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


def _promote(run: UseCaseRun, change: Change) -> StepResult:
    wanted = {k: v for k, v in resolve(change.after or {}, run.candidate, run.base).items()}
    cause = Cause.DRIFT if change.drift else Cause.COMMIT
    aliases.set_aliases(run, wanted, cause=cause)
    if change.drift:
        run.say("drift healed: aliases restored")
    return StepResult.DONE


def _shift(run: UseCaseRun, change: Change) -> StepResult:
    after = resolve(change.after or {}, run.candidate, run.base)
    before = resolve(change.before or {}, run.candidate, run.base)
    steps = list(after.get("steps", [100]))
    challenger = after.get("challenger")
    champion = before.get("champion")
    if challenger and champion:
        return rollout.progressive_shift(
            run, champion=str(champion), candidate=str(challenger), steps=steps
        )
    aliases.write_routes(run, list(routes_of(after["routes"])))
    run.say("routes set: " + ", ".join(f"{r['version']}={r['weight']}%" for r in after["routes"]))
    return StepResult.DONE


def _rollback(run: UseCaseRun, change: Change) -> StepResult:
    after = change.after or {}
    model = run.model()
    rejected = str(after["rejected"])
    version = model.version(rejected) if model else None
    reason = (version.tag(lineage.REJECTED) if version else None) or "rejected"
    aliases.rollback(run, restore=str(after["champion"]), rejected=rejected, reason=reason)
    return StepResult.DONE


_ACTIONS: dict[Action, Callable[[UseCaseRun, Change], StepResult]] = {
    Action.REGISTER: _register,
    Action.TRAIN: _train,
    Action.EVALUATE: _evaluate,
    Action.PROMOTE: _promote,
    Action.SHIFT: _shift,
    Action.ROLLBACK: _rollback,
}


def _version_with_key(run: UseCaseRun, key: str) -> str | None:
    model = run.model()
    found = model.find_by_key(key) if model else None
    return found.version if found else None


def _candidate(run: UseCaseRun) -> str:
    candidate = run.candidate or _version_with_key(run, run.identity.target_key)
    if candidate is None:
        raise ChangeFailedError("the candidate version is missing; plan again")
    run.candidate = candidate
    return candidate


def apply_use_case(context: ApplyContext, changes: list[Change]) -> UseCaseOutcome:
    name = changes[0].use_case
    use_case = context.desired.use_case(name)
    run = UseCaseRun(context, use_case, context.desired.identities[name])
    run.base = _version_with_key(run, run.identity.base_key)
    run.candidate = _version_with_key(run, run.identity.target_key)
    digest = run.identity.digest
    for index, change in enumerate(changes):
        if change.action is Action.NOOP:
            continue
        if change.drift and not use_case.spec.sync_policy.self_heal:
            run.say(f"drift left alone (selfHeal is off): {change.reason}")
            continue
        operation = context.journal.start(name, digest, change.action.value, index)
        try:
            state = check(change, run.model(), run.traffic(), run.candidate, run.base)
            if state.state is Precondition.DONE:
                context.journal.finish(operation, OperationStatus.SKIPPED, state.detail)
                continue
            if state.state is Precondition.STALE:
                raise ChangeFailedError(
                    f"{change.action.value} is stale: {state.detail}; the world changed since "
                    "the plan was made, plan again"
                )
            run.say(f"{change.action.value}: {change.reason}")
            result = _ACTIONS[change.action](run, change)
        except ReconcilerError as exc:
            context.journal.finish(operation, OperationStatus.FAILED, str(exc))
            run.say(f"failed: {exc}")
            return UseCaseOutcome(name, Health.DEGRADED, str(exc))
        if result is StepResult.SUSPENDED:
            context.journal.finish(operation, OperationStatus.SUCCEEDED, "suspended")
            return UseCaseOutcome(name, Health.SUSPENDED, "rollout suspended; apply again")
        if result is StepResult.DEGRADED:
            context.journal.finish(operation, OperationStatus.FAILED, "rolled back")
            return UseCaseOutcome(name, Health.DEGRADED, "candidate rolled back")
        context.journal.finish(
            operation, OperationStatus.SUCCEEDED, change.reason, {"candidate": run.candidate}
        )
    return UseCaseOutcome(name, Health.HEALTHY, "converged")
