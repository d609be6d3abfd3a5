"""Carry out a plan's changes for one use case, in order, never re-diffing.

Each change is checked against a fresh observation first (`preconditions`): done changes are
skipped, stale ones stop the use case with a message to plan again. Every change is journaled,
and whatever ends it - success, a suspended rollout, a known error or a bug - is recorded on
its journal row, so no row is left `running` by a live process. A failure ends this use case
as Degraded with its cause; the other use cases go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from reconciler.apply.actions import StaleChangeError, carry_out, made, version_with_key
from reconciler.apply.context import ApplyContext, StepResult, UseCaseRun
from reconciler.apply.journal import OperationStatus
from reconciler.apply.preconditions import Precondition, check
from reconciler.errors import ReconcilerError, StateStoreError, is_temporary
from reconciler.health import Health
from reconciler.plan.model import Action, Change

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UseCaseOutcome:
    use_case: str
    health: Health
    message: str
    # A temporary cause (a server unreachable, a lock held): the controller retries it with
    # backoff. A permanent one waits for the desired state or the world to change.
    retryable: bool = False
    requeue_after: float | None = None  # a progressing rollout asks to be advanced again


_ENDINGS = {
    StepResult.SUSPENDED: (OperationStatus.SUSPENDED, Health.SUSPENDED),
    StepResult.PROGRESSING: (OperationStatus.PROGRESSING, Health.PROGRESSING),
    StepResult.DEGRADED: (OperationStatus.FAILED, Health.DEGRADED),
}


def _describe(error: BaseException) -> str:
    if isinstance(error, ReconcilerError):
        return str(error)
    # A bug: say so, in one line, and keep the traceback in the log.
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"internal error: {type(error).__name__}: {first} (this is a bug; please report it)"


def apply_use_case(context: ApplyContext, changes: list[Change]) -> UseCaseOutcome:
    """Apply one use case's changes; whatever goes wrong ends this use case only."""
    name = changes[0].use_case
    try:
        return _apply_changes(context, name, changes)
    except Exception as exc:  # outside a change: the journal, the registry read before them
        if not isinstance(exc, ReconcilerError):
            log.exception("applying %s failed", name)
        return UseCaseOutcome(name, Health.DEGRADED, _describe(exc), retryable=is_temporary(exc))


def _apply_changes(context: ApplyContext, name: str, changes: list[Change]) -> UseCaseOutcome:
    use_case = context.desired.use_case(name)
    run = UseCaseRun(context, use_case, context.desired.identities[name])
    digest = run.identity.digest
    # The caller holds this use case's lock: a `running` row now is one whose process died.
    context.journal.interrupt_orphans(name)
    try:
        run.base = version_with_key(run, run.identity.base_key)
        run.candidate = version_with_key(run, run.identity.target_key)
    except ReconcilerError as exc:
        return UseCaseOutcome(name, Health.DEGRADED, str(exc), retryable=is_temporary(exc))
    for index, change in enumerate(changes):
        if change.action is Action.NOOP:
            continue
        if change.drift and not use_case.spec.sync_policy.self_heal:
            run.say(f"drift left alone (selfHeal is off): {change.reason}")
            continue
        operation = context.journal.start(name, digest, change.action.value, index)
        try:
            state = check(change, run.model(), run.traffic(), made(run))
            if state.state is Precondition.DONE:
                context.journal.finish(operation, OperationStatus.SKIPPED, state.detail)
                continue
            if state.state is Precondition.STALE:
                raise StaleChangeError(
                    f"{change.action.value} is stale: {state.detail}; the world changed since "
                    "the plan was made, plan again"
                )
            run.say(f"{change.action.value}: {change.reason}")
            result = carry_out(run, change)
        except Exception as exc:  # one use case's failure, whatever it is, ends only it
            if not isinstance(exc, ReconcilerError):
                log.exception("applying %s to %s failed", change.action.value, name)
            message = _describe(exc)
            _record_failure(context, operation, message)
            run.say(f"failed: {message}")
            return UseCaseOutcome(name, Health.DEGRADED, message, retryable=is_temporary(exc))
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): the row says so; the next apply resumes.
            context.journal.finish(
                operation, OperationStatus.INTERRUPTED, "interrupted; apply again to resume"
            )
            raise
        if result in _ENDINGS:
            status, health = _ENDINGS[result]
            message = _rollout_message(context, name) or result.value
            context.journal.finish(operation, status, message)
            return UseCaseOutcome(name, health, message, requeue_after=run.requeue_after)
        context.journal.finish(
            operation, OperationStatus.SUCCEEDED, change.reason, {"candidate": run.candidate}
        )
    return UseCaseOutcome(name, Health.HEALTHY, "converged")


def _record_failure(context: ApplyContext, operation: int, message: str) -> None:
    """Mark the operation failed, if the journal can be reached: when the state store is what
    failed, the row stays `running`, and the next apply (under this use case's lock) marks it
    interrupted - the outcome still reaches the caller."""
    try:
        context.journal.finish(operation, OperationStatus.FAILED, message)
    except StateStoreError as exc:
        log.warning("operation %d could not be marked failed: %s", operation, exc)


def _rollout_message(context: ApplyContext, name: str) -> str | None:
    state = context.journal.rollout(name)
    return state.message if state is not None else None
