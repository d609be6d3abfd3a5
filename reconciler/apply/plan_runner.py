"""apply(plan): refuse a stale or altered plan, lock the use cases, run each, report.

The plan is checked against a fresh load of the desired state it names and a fresh
observation: a different desired-state digest or observed serial means the world moved since
the plan was made, and the plan is refused whole (Terraform's "Saved plan is stale"). Then it
is checked against itself: the plan is a pure function of those two inputs, so the planner is
run again on them and a saved plan that differs in any change - a file edited to skip the
canary, to name another version - is refused before anything moves. Locks are taken before
these checks, so nothing can move in between.

Use cases are independent (one registered model, one route table entry, one lock each), so up
to `parallelism` of them are applied at once, as Terraform applies independent resources; each
one's outcome is kept whatever happens to the others.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconciler.apply.context import ApplyContext
from reconciler.apply.locks import LockHeldError, use_case_locks
from reconciler.apply.use_case_runner import UseCaseOutcome, apply_use_case
from reconciler.digest import short
from reconciler.errors import ReconcilerError
from reconciler.health import Health, worst
from reconciler.observe.observer import observe
from reconciler.plan.diff import diff, observed_serial
from reconciler.plan.model import Action, Plan


class StalePlanError(ReconcilerError):
    """The saved plan no longer describes the world."""


class AlteredPlanError(ReconcilerError):
    """The saved plan is not what the planner makes from the inputs it names."""


@dataclass(frozen=True)
class ApplyResult:
    outcomes: tuple[UseCaseOutcome, ...]

    @property
    def health(self) -> Health:
        return worst([o.health for o in self.outcomes])


def refuse_if_stale_or_altered(plan: Plan, context: ApplyContext) -> None:
    desired = context.desired
    if plan.source.digest != desired.source.digest:
        raise StalePlanError(
            "Saved plan is stale: the desired state changed since it was made "
            f"(plan {short(plan.source.digest)}, now {short(desired.source.digest)}); "
            "run `reconciler plan` again"
        )
    observed = observe(desired, context.registry, context.traffic)
    # Every use case planned has at least one change (a no-op when in sync).
    now = observed_serial(desired, observed, plan.use_cases())
    if plan.observed_serial != now:
        raise StalePlanError(
            "Saved plan is stale: the registry or the traffic changed since it was made "
            f"(plan {short(plan.observed_serial)}, now {short(now)}); "
            "run `reconciler plan` again"
        )
    expected = diff(desired, observed, only=plan.use_cases()).changes
    if plan.changes != expected:
        first = next(
            (i for i, (a, b) in enumerate(zip(plan.changes, expected, strict=False)) if a != b),
            min(len(plan.changes), len(expected)),
        )
        where = (
            f"change {first + 1} ({plan.changes[first].use_case} "
            f"{plan.changes[first].action.value})"
            if first < len(plan.changes)
            else f"{len(expected) - len(plan.changes)} change(s) missing"
        )
        raise AlteredPlanError(
            "Saved plan does not match what the planner makes from the same desired state "
            f"and observed state ({where} differs): the file was edited or corrupted. Nothing "
            "was applied; run `reconciler plan` again"
        )


def apply_plan(
    plan: Plan,
    context: ApplyContext,
    *,
    lock_timeout: float = 0.0,
    check_stale: bool = True,
    parallelism: int = 1,
) -> ApplyResult:
    names = [name for name in plan.use_cases() if plan.changes_for(name)]

    def one(name: str) -> UseCaseOutcome:
        changes = plan.changes_for(name)
        if all(c.action is Action.NOOP for c in changes):
            return UseCaseOutcome(name, Health.HEALTHY, changes[0].reason)
        return apply_use_case(context, changes)

    def locked_one(name: str) -> UseCaseOutcome:
        try:
            with context.locks.hold(name, timeout=lock_timeout, clock=context.clock):
                return one(name)
        except LockHeldError as exc:
            return UseCaseOutcome(name, Health.DEGRADED, str(exc), retryable=True)

    if not check_stale:
        # A fresh plan (the controller's): each use case on its own lock, so one held by
        # another reconciler does not hold up the others.
        return ApplyResult(_each(names, locked_one, parallelism))
    # A saved plan is checked whole against the world, under all of its locks at once.
    with use_case_locks(context.locks, names, timeout=lock_timeout, clock=context.clock):
        refuse_if_stale_or_altered(plan, context)
        return ApplyResult(_each(names, one, parallelism))


def _each(
    names: list[str], run: Callable[[str], UseCaseOutcome], parallelism: int
) -> tuple[UseCaseOutcome, ...]:
    if parallelism > 1 and len(names) > 1:
        with ThreadPoolExecutor(
            max_workers=min(parallelism, len(names)), thread_name_prefix="apply"
        ) as pool:
            return tuple(pool.map(run, names))
    return tuple(run(name) for name in names)
