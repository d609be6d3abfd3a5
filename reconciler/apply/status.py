"""Status of each use case: sync (does the plan have changes?) and health (how is it doing?).

Health, worst first: Degraded (the last operation for this desired state failed, or its
candidate was rejected or failed evaluation), Suspended (paused by an operator or for lack of
traffic), Progressing (a rollout is under way), Healthy. A failure recorded for an older
desired state does not count: a newer commit always gets its chance (level-triggered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler import lineage
from reconciler.apply.journal import Control, Journal, OperationStatus
from reconciler.health import Health, Sync
from reconciler.lineage import Alias
from reconciler.observe.state import ObservedState
from reconciler.plan.diff import live_routes
from reconciler.plan.model import Plan
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
        }


def use_case_status(
    desired: DesiredState, observed: ObservedState, plan: Plan, journal: Journal
) -> list[UseCaseStatus]:
    statuses = []
    for use_case in desired.use_cases:
        name = use_case.name
        identity = desired.identities[name]
        model = observed.registered_model(use_case.spec.registered_model)
        aliases = model.aliases if model else {}
        pending = [c for c in plan.changes_for(name) if c.action.value != "noop"]
        operation = journal.last_operation(name)
        rollout = journal.rollout(name)
        health, message = Health.HEALTHY, "serving the desired version"
        candidate = model.find_by_key(identity.target_key) if model else None
        rejected = candidate is not None and (
            candidate.tag(lineage.REJECTED_DIGEST) == identity.digest
        )
        failed_eval = candidate is not None and (
            candidate.tag(lineage.EVALUATION_VERDICT) == lineage.Verdict.FAILED
            and candidate.tag(lineage.EVALUATION_DIGEST) == identity.digest
        )
        if rejected and candidate is not None:
            health = Health.DEGRADED
            message = f"candidate {candidate.version} rejected: {candidate.tag(lineage.REJECTED)}"
        elif failed_eval and candidate is not None:
            reason = candidate.tag(lineage.EVALUATION_REASON) or "thresholds not met"
            health, message = Health.DEGRADED, f"candidate {candidate.version} failed: {reason}"
        elif (
            operation is not None
            and operation.status is OperationStatus.FAILED
            and operation.digest == identity.digest
        ):
            health, message = Health.DEGRADED, operation.message
        elif journal.pending_control(name) is Control.PAUSE:
            health, message = Health.SUSPENDED, "paused by an operator"
        elif rollout is not None and rollout.paused_reason:
            health, message = Health.SUSPENDED, f"rollout paused: {rollout.paused_reason}"
        elif aliases.get(Alias.CHALLENGER.value) or rollout is not None:
            health, message = Health.PROGRESSING, "rollout in progress"
        elif pending:
            message = f"{len(pending)} changes to apply"
        statuses.append(
            UseCaseStatus(
                name=name,
                sync=Sync.OUT_OF_SYNC if pending else Sync.SYNCED,
                health=health,
                message=message,
                champion=aliases.get(Alias.CHAMPION.value),
                challenger=aliases.get(Alias.CHALLENGER.value),
                traffic=tuple(
                    (r.version, r.weight) for r in live_routes(observed.traffic_of(name))
                ),
                last_operation=None
                if operation is None
                else {
                    "action": operation.action,
                    "status": operation.status.value,
                    "message": operation.message,
                    "started_at": operation.started_at,
                    "finished_at": operation.finished_at,
                },
            )
        )
    return statuses
