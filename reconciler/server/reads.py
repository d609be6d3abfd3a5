"""What the API's GET endpoints answer, as JSON values: status, one use case, its history,
the plan, its guardrail violations, and discovery's ranked candidates.

Each read starts from the desired state at the ref the controller follows and the state
folder the controller writes, so the API shows what the controller sees and would do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.apply.locks import locks_for
from reconciler.apply.status import UseCaseStatus, rollout_view, use_case_status
from reconciler.controller import CycleReport, describe
from reconciler.errors import ReconcilerError
from reconciler.plan.model import Plan
from reconciler.planning import make_plan
from reconciler.server.runtime import DesiredStateInvalidError, ServeRuntime
from reconciler.spec.loader import DesiredState
from reconciler.state_store.database import StateDatabase

RECENT_JUDGEMENTS = 10


class UnknownUseCaseError(ReconcilerError):
    pass


def _planned(runtime: ServeRuntime) -> tuple[DesiredState, Plan, list[UseCaseStatus]]:
    made = make_plan(runtime.repo, runtime.ref, runtime.settings, local_traffic=True)
    if made.plan is None or made.desired is None or made.observed is None:
        raise DesiredStateInvalidError(made.diagnostics)
    statuses = use_case_status(
        made.desired,
        made.observed,
        made.plan,
        runtime.journal,
        locks=locks_for(StateDatabase.of(runtime.settings), runtime.settings.state_dir),
    )
    return made.desired, made.plan, statuses


def known(desired: DesiredState, name: str) -> None:
    names = [u.name for u in desired.use_cases]
    if name not in names:
        raise UnknownUseCaseError(f"unknown use case {name} (known: {', '.join(names)})")


def cycle_view(report: CycleReport | None, number: int | None = None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "number": number,
        "commit": report.commit,
        "summary": describe(report),
        "error": report.error,
        "applied": {name: health.value for name, health in sorted(report.applied.items())},
        "messages": dict(sorted(report.messages.items())),
        "waiting": list(report.waiting),
        "in_sync": list(report.in_sync),
        "backing_off": list(report.backing_off),
        "held": list(report.held),
    }


def controller_view(runtime: ServeRuntime) -> dict[str, Any]:
    controller = runtime.controller
    begun, _ = controller.cycles if controller else (0, 0)
    finished, last = controller.last_cycle if controller else (0, None)
    dispatcher = runtime.dispatcher
    return {
        "repo": str(runtime.repo),
        "ref": runtime.ref,
        "cycles_begun": begun,
        "cycles_finished": finished,
        "last_cycle": cycle_view(last, finished),
        "notifications": {
            "delivered": dispatcher.delivered,
            "failed": dispatcher.failed,
            "dropped": dispatcher.dropped,
            "recent_failures": [f.as_json() for f in list(dispatcher.recent_failures)[-10:]],
        },
    }


def status(runtime: ServeRuntime) -> dict[str, Any]:
    desired, plan, statuses = _planned(runtime)
    return {
        "commit": desired.source.commit,
        "digest": desired.source.digest,
        "has_changes": plan.has_changes,
        "use_cases": [s.as_json() for s in statuses],
        "controller": controller_view(runtime),
    }


def use_case(runtime: ServeRuntime, name: str) -> dict[str, Any]:
    desired, plan, statuses = _planned(runtime)
    known(desired, name)
    found = next(s for s in statuses if s.name == name)
    journal = runtime.journal
    state = journal.rollout(name)
    control = journal.pending_control(name)
    last = journal.control_record(name)
    return {
        **found.as_json(),
        "commit": desired.source.commit,
        "digest": desired.identities[name].digest,
        "plan": [c.model_dump(mode="json") for c in plan.changes_for(name)],
        "latest_rollout": None if state is None else rollout_view(state),
        "pending_control": None if control is None else control.value,
        # The latest control asked for, and what became of it (pending, obeyed, or dropped
        # with why): a control whose rollout ended first is dropped, not done.
        "last_control": None if last is None else last.as_json(),
        "judgements": [j.as_json() for j in journal.judgements(name)[-RECENT_JUDGEMENTS:]],
    }


def history(runtime: ServeRuntime, name: str) -> dict[str, Any]:
    known(runtime.load(), name)
    journal = runtime.journal
    return {
        "use_case": name,
        "champion_changes": [c.as_json() for c in journal.history(name)],
        "judgements": [
            {"at": datetime.fromtimestamp(j.window_end, UTC).isoformat(timespec="seconds")}
            | j.as_json()
            for j in journal.judgements(name)
        ],
        "operator_actions": [e.as_json() for e in runtime.audit.entries(name)],
    }


def plan(runtime: ServeRuntime) -> Plan:
    made = make_plan(runtime.repo, runtime.ref, runtime.settings, local_traffic=True)
    if made.plan is None:
        raise DesiredStateInvalidError(made.diagnostics)
    return made.plan


def guardrails(runtime: ServeRuntime, name: str) -> dict[str, Any]:
    from reconciler.guardrails.store import ViolationStore

    known(runtime.load(), name)
    store = ViolationStore(StateDatabase.of(runtime.settings))
    report: dict[str, Any] = store.report(name).to_json()
    return report


def discovery(runtime: ServeRuntime, names: list[str]) -> dict[str, Any]:
    """Ranked candidates of the use cases with `spec.discovery` (or of `names`)."""
    from reconciler.discovery.discover import discover_use_case

    desired = runtime.load()
    for name in names:
        known(desired, name)
    chosen = [
        u
        for u in desired.use_cases
        if u.spec.discovery is not None and (not names or u.name in names)
    ]
    now = datetime.now(UTC)
    results = [
        discover_use_case(u, desired, repo=runtime.repo, environ=runtime.environ, now=now)
        for u in chosen
    ]
    return {"use_cases": [r.as_json() for r in results]}
