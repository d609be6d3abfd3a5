"""apply(plan): refuse a stale plan, lock the use cases, execute, and report per use case.

The plan is checked against a fresh load of the desired state it names and a fresh
observation: a different desired-state digest or observed serial means the world moved since
the plan was made, and the plan is refused whole (Terraform's "Saved plan is stale"). Locks are
taken before that check, so nothing can move in between.

Use cases are independent (one registered model, one route table entry, one lock each), so up
to `parallelism` of them are applied at once, as Terraform applies independent resources: a
rollout baking for half an hour does not hold up another use case's training.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconciler.apply.executor import UseCaseOutcome, apply_use_case
from reconciler.apply.locks import use_case_locks
from reconciler.apply.run import ApplyContext
from reconciler.digest import short
from reconciler.errors import ReconcilerError
from reconciler.health import Health, worst
from reconciler.observe.observer import observe
from reconciler.plan.model import Action, Plan


class StalePlanError(ReconcilerError):
    """The saved plan no longer describes the world."""


@dataclass(frozen=True)
class ApplyResult:
    outcomes: tuple[UseCaseOutcome, ...]

    @property
    def health(self) -> Health:
        return worst([o.health for o in self.outcomes])


def refuse_if_stale(plan: Plan, context: ApplyContext) -> None:
    desired = context.desired
    if plan.source.digest != desired.source.digest:
        raise StalePlanError(
            "Saved plan is stale: the desired state changed since it was made "
            f"(plan {short(plan.source.digest)}, now {short(desired.source.digest)}); "
            "run `reconciler plan` again"
        )
    observed = observe(desired, context.registry, context.traffic)
    if plan.observed_serial != observed.serial:
        raise StalePlanError(
            "Saved plan is stale: the registry or the traffic changed since it was made "
            f"(plan {short(plan.observed_serial)}, now {short(observed.serial)}); "
            "run `reconciler plan` again"
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

    with use_case_locks(context.state_dir, names, timeout=lock_timeout):
        if check_stale:
            refuse_if_stale(plan, context)
        if parallelism > 1 and len(names) > 1:
            with ThreadPoolExecutor(
                max_workers=min(parallelism, len(names)), thread_name_prefix="apply"
            ) as pool:
                outcomes = list(pool.map(one, names))
        else:
            outcomes = [one(name) for name in names]
    return ApplyResult(tuple(outcomes))
