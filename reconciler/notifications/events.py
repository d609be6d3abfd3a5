"""A notification: one thing that happened to a use case, as a value any sender can render.

The rollout driver, the controller (drift), the guardrail watch, `propose` and the API's
break-glass writes make these; `webhooks.py` sends them. `details` holds JSON values only
(versions, the stage, the failed metrics with value and threshold) so every payload format
and every receiver reads the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from reconciler.spec.notifications import NotificationEvent


@dataclass(frozen=True)
class Notification:
    event: NotificationEvent
    use_case: str | None
    message: str  # one line, for people
    at: float  # seconds since the epoch, from the sender's clock
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def at_iso(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds")

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event.value,
            "use_case": self.use_case,
            "message": self.message,
            "at": self.at_iso,
            "details": dict(self.details),
        }


class Notifier(Protocol):
    def notify(self, notification: Notification) -> None:
        """Tell whoever listens; never blocks on a receiver and never raises."""
        ...


class SilentNotifier:
    """Tells no one: the notifier where no webhook is configured."""

    def notify(self, notification: Notification) -> None:
        return None
