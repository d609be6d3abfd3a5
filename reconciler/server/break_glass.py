"""Break-glass writes: an operator acts ahead of git, at once, and it is recorded.

- `rollback` restores the previous champion (or a named version) now, under the use case's
  lock, exactly as `reconciler rollback` does; the version it replaces is rejected for this
  desired state.
- `pause`, `resume`, `abort`, `promote` are operator controls the rollout machine obeys at its
  next step; the API asks for a reconcile cycle at once and waits (within `wait` seconds) for
  it, so the answer says what the rollout did - or that the control was dropped, and why,
  when its rollout ended (rolled back from outside, say) before obeying it.

Recorded where git can see it: when a rollback (or an abort) left a rejected version the
desired state does not list yet and a forge is configured (`GITHUB_TOKEN`; see `propose`),
a pull request records it in `spec.rejected` (the propose machinery's rollback record, one
branch per use case, updated rather than duplicated). Otherwise the journal's history names
the break-glass write and the webhooks hear that the desired state must catch up. Every
write is also in the audit log, which `history` shows beside the champion changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.apply.commands import CATCH_UP, CONTROLS_NEEDING_A_ROLLOUT, roll_back_by_hand
from reconciler.apply.journal import ControlOutcome
from reconciler.apply.status import rollout_view
from reconciler.errors import ReconcilerError
from reconciler.notifications.events import Notification
from reconciler.notifications.webhooks import notifier_for
from reconciler.rollout.state import Control, Phase
from reconciler.server.audit import AuditEntry
from reconciler.server.reads import known
from reconciler.server.runtime import ServeRuntime
from reconciler.spec.loader import DesiredState
from reconciler.spec.notifications import NotificationEvent

log = logging.getLogger(__name__)

# A reconcile cycle holds a use case's lock for one step of its rollout: worth waiting for.
LOCK_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class BreakGlassResult:
    action: str
    use_case: str
    done: bool  # acted; False: asked, and the rollout obeys at its next step
    outcome: str
    recorded: str  # where it can be seen: a pull request, or history
    pull_request: str | None = None
    cycle: int | None = None
    rollout: dict[str, Any] | None = None
    dropped: bool = False  # a control its rollout ended before obeying: nothing was done

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "use_case": self.use_case,
            "done": self.done,
            "outcome": self.outcome,
            "recorded": self.recorded,
            "pull_request": self.pull_request,
            "cycle": self.cycle,
            "rollout": self.rollout,
            "dropped": self.dropped,
        }


def rollback(
    runtime: ServeRuntime, name: str, to_version: str | None, *, client: str | None
) -> BreakGlassResult:
    desired = runtime.load()
    known(desired, name)
    context = runtime.make_context(runtime.repo, desired, runtime.settings)
    done = roll_back_by_hand(
        context,
        name,
        to_version,
        reason="rolled back through the API (break-glass)",
        detail=f"break-glass rollback through the API; {CATCH_UP}",
        lock_timeout=LOCK_WAIT_SECONDS,
    )
    if not done.done:
        return _finish(
            runtime, desired, BreakGlassResult("rollback", name, False, done.message, "-"), client
        )
    pull = record_rejection_in_git(runtime, name)
    recorded = f"pull request {pull}" if pull else f"history ({CATCH_UP})"
    return _finish(
        runtime,
        desired,
        BreakGlassResult("rollback", name, True, done.message, recorded, pull_request=pull),
        client,
    )


def control(
    runtime: ServeRuntime, name: str, asked: Control, *, wait: float, client: str | None
) -> BreakGlassResult:
    desired = runtime.load()
    known(desired, name)
    journal = runtime.journal
    running = journal.rollout(name)
    if asked in CONTROLS_NEEDING_A_ROLLOUT and (running is None or not running.active):
        raise ReconcilerError(
            f"no rollout of {name} is in progress: {asked.value} acts on a running rollout "
            "only (a pause waits for the next one)"
        )
    requested_at = journal.request(name, asked)
    cycle = None
    if runtime.controller is not None:
        cycle = runtime.controller.reconcile_now()
        if wait > 0:
            runtime.controller.wait_for_cycle(cycle, wait)
    state = journal.rollout(name)
    view = None if state is None else rollout_view(state)
    record = journal.control_record(name, requested_at)
    if record is not None and record.outcome is ControlOutcome.DROPPED:
        # Its rollout ended (rolled back, or finished) before it obeyed: nothing was done.
        outcome = f"{asked.value} dropped: {record.reason}"
        return _finish(
            runtime,
            desired,
            BreakGlassResult(
                asked.value, name, False, outcome, "history", None, cycle, view, dropped=True
            ),
            client,
        )
    if record is None or record.outcome is ControlOutcome.PENDING:
        active = state is not None and state.active
        outcome = (
            f"{asked.value} requested; the rollout of {state.candidate} obeys it at its next "
            f"step (cycle {cycle})"
            if active and state is not None
            else "pause requested; no rollout is in progress, so the next one holds at its "
            "first step until resumed"
        )
        return _finish(
            runtime,
            desired,
            BreakGlassResult(asked.value, name, False, outcome, "history", None, cycle, view),
            client,
        )
    assert state is not None  # the control was obeyed, so a rollout obeyed it
    pull = None
    if asked is Control.ABORT and state.phase is Phase.ROLLED_BACK:
        pull = record_rejection_in_git(runtime, name)
        recorded = f"pull request {pull}" if pull else f"history ({CATCH_UP})"
    elif asked is Control.PROMOTE:
        recorded = "history (git already asks for this candidate)"
    else:
        recorded = "history (a pause is not part of the desired state)"
    result = BreakGlassResult(asked.value, name, True, state.message, recorded, pull, cycle, view)
    return _finish(runtime, desired, result, client)


def record_rejection_in_git(runtime: ServeRuntime, name: str) -> str | None:
    """Open (or update) the pull request recording the use case's rejected versions in
    `spec.rejected`; its URL, or None where no forge is configured or it could not be done."""
    if not runtime.environ.get("GITHUB_TOKEN"):
        return None
    from reconciler.propose.context import ProposeOptions, open_context
    from reconciler.propose.dashboard import Dashboard
    from reconciler.propose.rollback_proposals import propose_rollbacks

    now = datetime.now(UTC)
    try:
        context, _ = open_context(
            ProposeOptions(repo=runtime.repo, names=(name,), evaluate=False),
            settings=runtime.settings,
            environ=runtime.environ,
            now=now,
            say=log.info,
        )
    except ReconcilerError as exc:
        log.warning("break-glass on %s: cannot record it in git: %s", name, exc)
        return None
    try:
        if context.observed is None:
            log.warning(
                "break-glass on %s: cannot record it in git: %s", name, context.observe_problem
            )
            return None
        outcomes = propose_rollbacks(context, Dashboard(now=now))
    except ReconcilerError as exc:
        log.warning("break-glass on %s: cannot record it in git: %s", name, exc)
        return None
    finally:
        if context.forge is not None:
            context.forge.__exit__()
    return next((o.detail for o in outcomes if o.status in ("opened", "updated")), None)


def _finish(
    runtime: ServeRuntime, desired: DesiredState, result: BreakGlassResult, client: str | None
) -> BreakGlassResult:
    now = datetime.now(UTC)
    runtime.audit.append(
        AuditEntry(
            at=now.isoformat(timespec="seconds"),
            action=result.action,
            use_case=result.use_case,
            client=client,
            outcome=result.outcome,
            recorded=result.recorded,
        )
    )
    log.info(
        "break-glass %s on %s: %s; recorded in %s",
        result.action,
        result.use_case,
        result.outcome,
        result.recorded,
        extra={"use_case": result.use_case, "action": result.action},
    )
    notifier = notifier_for(desired, runtime.dispatcher, environ=runtime.environ)
    notifier.notify(
        Notification(
            NotificationEvent.BREAK_GLASS,
            result.use_case,
            f"{result.action} through the API: {result.outcome}; recorded in {result.recorded}",
            now.timestamp(),
            {
                "action": result.action,
                "done": result.done,
                "recorded": result.recorded,
                "pull_request": result.pull_request or "",
            },
        )
    )
    return result
