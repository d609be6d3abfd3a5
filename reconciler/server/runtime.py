"""What `reconciler serve` holds while it runs: where the desired state is, the controller,
the notifications, the metrics and the audit log. The API's handlers read from it; the
controller's cycles build their apply contexts through it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.context import ApplyContext
from reconciler.apply.journal import Journal
from reconciler.controller import Controller
from reconciler.errors import ReconcilerError
from reconciler.notifications.dispatcher import Dispatcher
from reconciler.notifications.webhooks import notifier_for
from reconciler.server.audit import AuditLog
from reconciler.settings import Settings
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.loader import DesiredState, load_desired_state


class DesiredStateInvalidError(ReconcilerError):
    """The desired state at the followed ref does not validate; nothing can be answered."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        super().__init__(f"the desired state is invalid ({len(diagnostics)} problem(s))")
        self.diagnostics = diagnostics


@dataclass
class ServeRuntime:
    repo: Path
    ref: str | None
    settings: Settings
    dispatcher: Dispatcher
    audit: AuditLog
    token: str | None = field(default=None, repr=False)
    time_scale: float = 1.0
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)
    controller: Controller | None = None  # set once it is made (it needs `make_context`)
    # The desired state of the latest cycle: what the metrics' rollout phases are read for.
    latest_desired: DesiredState | None = None

    @property
    def journal(self) -> Journal:
        from reconciler.apply.commands import journal

        return journal(self.settings)

    def load(self) -> DesiredState:
        """The desired state at the followed ref (the working tree without one)."""
        loaded = load_desired_state(self.repo, self.ref)
        if loaded.state is None:
            raise DesiredStateInvalidError(loaded.diagnostics)
        return loaded.state

    def make_context(self, repo: Path, desired: DesiredState, settings: Settings) -> ApplyContext:
        """The controller's context: one step per rollout per cycle, webhooks told."""
        from reconciler.apply.commands import build_context

        self.latest_desired = desired
        return build_context(
            repo,
            desired,
            settings,
            time_scale=self.time_scale,
            drive_rollouts=False,
            notifier=notifier_for(desired, self.dispatcher, environ=self.environ),
        )
