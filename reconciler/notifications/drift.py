"""Drift notifications: said when a use case's drift appears or changes, not every cycle.

A plan marks the changes that restore what was changed outside the reconciler (aliases moved
by hand, weights edited in the route table). Each reconcile sees the drift again until it is
healed - or forever, with `selfHeal: false` - so `DriftMemory` keeps what was last said per
use case and a notification goes out only when that changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.notifications.events import Notification
from reconciler.plan.model import Action, Plan
from reconciler.spec.loader import DesiredState
from reconciler.spec.notifications import NotificationEvent


@dataclass
class DriftMemory:
    """Per use case, the drift last notified (the controller's memory, like its retries)."""

    said: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def news(self, plan: Plan, desired: DesiredState, *, at: float) -> list[Notification]:
        """A notification for each use case whose drift is new since the last plan."""
        found = []
        for use_case in desired.use_cases:
            name = use_case.name
            reasons = tuple(
                c.reason for c in plan.changes_for(name) if c.drift and c.action is not Action.NOOP
            )
            if not reasons:
                self.said.pop(name, None)
                continue
            if self.said.get(name) == reasons:
                continue
            self.said[name] = reasons
            heals = use_case.spec.sync_policy.self_heal
            will = (
                "selfHeal restores it"
                if heals and use_case.spec.sync_policy.automated
                else "selfHeal restores it at the next apply"
                if heals
                else "selfHeal is off: reported and left alone"
            )
            found.append(
                Notification(
                    NotificationEvent.DRIFT_DETECTED,
                    name,
                    f"changed outside the reconciler: {'; '.join(reasons)} ({will})",
                    at,
                    {
                        "changes": list(reasons),
                        "self_heal": heals,
                        "commit": desired.source.commit or "",
                    },
                )
            )
        return found
