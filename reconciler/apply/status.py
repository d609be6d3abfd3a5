"""Status of each use case: sync (does the plan have changes?) and health (how is it doing?).

Health is derived from the current desired state's own records only - the latest operation
for this digest, this digest's rollout, the candidate's tags - so a failure recorded for an
older commit does not count (a newer commit always gets its chance), and a journal row left
`running` by a process that died (its lock is free) reads as interrupted, never as progress.

Worst first: Degraded (the last operation for this desired state failed, or its candidate was
rejected or failed evaluation), Missing (no live routes: players get no answer), Suspended
(paused by an operator or for lack of traffic, or interrupted), Progressing (a rollout is
under way), Healthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import lineage
from reconciler.apply.journal import Journal, Operation, OperationStatus
from reconciler.apply.locks import UseCaseLocks
from reconciler.health import Health, Sync
from reconciler.lineage import Alias
from reconciler.observe.state import ObservedState
from reconciler.plan.model import Action, Plan
from reconciler.plan.planned import live_routes
from reconciler.rollout.state import Phase, RolloutState
from reconciler.spec.loader import DesiredState


@dataclass(frozen=True)
class UseCaseStatus:
    name: str
    sync: Sync
    health: Health
    message: str
    champion: str | None
    challenger: str | None
    traffic: tuple[tuple[str, int], ...]
    last_operation: dict[str, Any] | None
    rollout: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sync": self.sync.value,
            "health": self.health.value,
            "message": self.message,
            "champion": self.champion,
            "challenger": self.challenger,
            "traffic": [{"version": v, "weight": w} for v, w in self.traffic],
            "last_operation": self.last_operation,
            "rollout": self.rollout,
        }


def rollout_view(state: RolloutState) -> dict[str, Any]:
    """The rollout as status shows it: where it stands and why it waits."""
    last = state.last_judgement
    return {
        "candidate": state.candidate,
        "champion": state.champion,
        "strategy": state.strategy.value,
        "phase": state.phase.value,
        "step": state.stage_index + 1,
        "steps": len(state.stages),
        "stage": state.stage.label,
        "weight": state.stage.weight,
        "failures": state.failures,
        "waiting": state.message,
        "last_judgement": None if last is None else last.as_json(),
    }


def _honest(operation: Operation | None, locks: UseCaseLocks, use_case: str) -> Operation | None:
    """A `running` row whose use case nobody holds the lock of was left by a dead process."""
    if operation is None or operation.status is not OperationStatus.RUNNING:
        return operation
    if locks.holder(use_case) is not None:
        return operation
    return Operation(
        **{
            **operation.__dict__,
            "status": OperationStatus.INTERRUPTED,
            "message": "interrupted: its process stopped before it finished; apply again",
        }
    )


def use_case_status(
    desired: DesiredState,
    observed: ObservedState,
    plan: Plan,
    journal: Journal,
    *,
    locks: UseCaseLocks,
    unservable: Mapping[str, tuple[str, ...]] | None = None,
) -> list[UseCaseStatus]:
    """`unservable`: per use case, why the gateway cannot serve a version its routes name
    (from the gateway itself, when one is configured); "*" applies to every use case."""
    unservable = unservable or {}
    statuses = []
    for use_case in desired.use_cases:
        name = use_case.name
        identity = desired.identities[name]
        model = observed.registered_model(use_case.spec.registered_model)
        aliases = model.aliases if model else {}
        routes = live_routes(observed.traffic_of(name))
        pending = [c for c in plan.changes_for(name) if c.action is not Action.NOOP]
        operation = _honest(journal.last_operation(name, digest=identity.digest), locks, name)
        rollout = journal.rollout(name)
        if rollout is not None and rollout.digest != identity.digest:
            rollout = None  # another desired state's rollout: superseded
        candidate = model.find_by_key(identity.target_key) if model else None
        health, message = _health(
            candidate_tags=dict(candidate.tags) if candidate else {},
            candidate=candidate.version if candidate else None,
            digest=identity.digest,
            operation=operation,
            rollout=rollout,
            has_routes=bool(routes),
            pending=len(pending),
            unservable=(*unservable.get("*", ()), *unservable.get(name, ())),
        )
        statuses.append(
            UseCaseStatus(
                name=name,
                sync=Sync.OUT_OF_SYNC if pending else Sync.SYNCED,
                health=health,
                message=message,
                champion=aliases.get(Alias.CHAMPION.value),
                challenger=aliases.get(Alias.CHALLENGER.value),
                traffic=tuple((r.version, r.weight) for r in routes),
                last_operation=None if operation is None else operation.as_json(),
                rollout=None if rollout is None else rollout_view(rollout),
            )
        )
    return statuses


def _health(
    *,
    candidate_tags: dict[str, str],
    candidate: str | None,
    digest: str,
    operation: Operation | None,
    rollout: RolloutState | None,
    has_routes: bool,
    pending: int,
    unservable: tuple[str, ...] = (),
) -> tuple[Health, str]:
    if candidate is not None and candidate_tags.get(lineage.REJECTED_DIGEST) == digest:
        return (
            Health.DEGRADED,
            f"candidate {candidate} rejected: {candidate_tags.get(lineage.REJECTED)}",
        )
    if (
        candidate is not None
        and candidate_tags.get(lineage.EVALUATION_VERDICT) == lineage.EvaluationVerdict.FAILED
        and candidate_tags.get(lineage.EVALUATION_DIGEST) == digest
    ):
        reason = candidate_tags.get(lineage.EVALUATION_REASON) or "thresholds not met"
        return Health.DEGRADED, f"candidate {candidate} failed evaluation: {reason}"
    if operation is not None and operation.status is OperationStatus.FAILED:
        return Health.DEGRADED, operation.message
    if not has_routes:
        return Health.MISSING, "no live routes: the gateway cannot answer for this use case"
    if unservable:
        return Health.DEGRADED, "; ".join(unservable)
    # An active rollout with nothing left to apply was interrupted after its last write (the
    # registry and routes already say it is over): it is not in progress.
    if rollout is not None and rollout.active and pending:
        if rollout.phase is Phase.PAUSED:
            return Health.SUSPENDED, f"rollout paused: {rollout.message}"
        return Health.PROGRESSING, f"rollout {rollout.phase.value.lower()}: {rollout.message}"
    if pending and operation is not None and operation.status is OperationStatus.INTERRUPTED:
        return Health.SUSPENDED, f"{operation.action} {operation.message}"
    if pending:
        return Health.HEALTHY, f"{pending} change{'s' if pending != 1 else ''} to apply"
    return Health.HEALTHY, "serving the desired version"
