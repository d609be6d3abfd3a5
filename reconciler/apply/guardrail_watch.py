"""The guardrail watch: roll back a serving version whose critical violation rate is too high.

Reads what each live version of each use case answered recently (the gateway's request log),
judges it with the use case's guardrail policies (`guardrails.monitor`: the inline guard's
findings where it ran, a fresh check otherwise), and for every version whose rate of critical
outputs (findings mapped to the `rollback` intervention) exceeds the limit does what an
aborted canary does: all
traffic back to the last good version, and the offender tagged rejected for this desired
state so the next plan does not bring it back. Runs under the use case's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.apply.aliases import rollback
from reconciler.apply.context import ApplyContext, UseCaseRun
from reconciler.lineage import Alias
from reconciler.notifications.events import Notification
from reconciler.spec.notifications import NotificationEvent


@dataclass(frozen=True)
class WatchFinding:
    use_case: str
    version: str
    critical_rate: float
    outputs: int
    action: str


def watch_guardrails(
    context: ApplyContext,
    *,
    since: float,
    critical_rate_limit: float,
    min_outputs: int = 20,
) -> list[WatchFinding]:
    from reconciler.gateway.log_queries import served_outputs
    from reconciler.guardrails.engine import compile_policies
    from reconciler.guardrails.monitor import LoggedOutput, monitor_outputs
    from reconciler.guardrails.store import ViolationStore

    desired = context.desired
    engines = {
        use_case.name: compile_policies(
            [desired.policy(name) for name in use_case.spec.guardrails], base_path=context.repo
        )
        for use_case in desired.use_cases
        if use_case.spec.guardrails
    }
    outputs = [
        LoggedOutput(
            name,
            served.version,
            served.text,
            datetime.fromtimestamp(served.ts, UTC),
            request_id=served.id or None,
            inline_violations=served.violations,
        )
        for name in engines
        for served in served_outputs(context.database, name, since=since)
    ]
    report = monitor_outputs(
        outputs,
        engines,
        critical_rate_limit=critical_rate_limit,
        min_outputs=min_outputs,
        store=ViolationStore(context.database),
    )
    findings = []
    for rates in report.exceeding:
        use_case = desired.use_case(rates.use_case)
        run = UseCaseRun(context, use_case, desired.identities[use_case.name])
        reason = (
            f"critical guardrail violation rate {rates.critical_rate:.3f} > "
            f"{critical_rate_limit:g} over {rates.outputs} outputs"
        )
        with context.locks.hold(use_case.name, timeout=60, clock=context.clock):
            model = run.model()
            aliases = model.aliases if model else {}
            champion = aliases.get(Alias.CHAMPION.value)
            if rates.version == aliases.get(Alias.CHALLENGER.value) and champion:
                restore: str | None = champion
            elif rates.version == champion:
                restore = aliases.get(Alias.PREVIOUS.value)
            else:
                restore = None
            if restore is None or (model is not None and model.version(restore) is None):
                action = "no earlier version to restore: left serving, reported"
            else:
                rollback(run, restore=restore, rejected=rates.version, reason=reason)
                action = f"rolled back to {restore}"
        context.report(f"{use_case.name}: version {rates.version}: {reason}; {action}")
        context.notifier.notify(
            Notification(
                NotificationEvent.GUARDRAIL_CRITICAL_RATE,
                use_case.name,
                f"version {rates.version}: {reason}; {action}",
                context.clock.now(),
                {
                    "version": rates.version,
                    "critical_rate": rates.critical_rate,
                    "limit": critical_rate_limit,
                    "outputs": rates.outputs,
                    "action": action,
                },
            )
        )
        findings.append(
            WatchFinding(use_case.name, rates.version, rates.critical_rate, rates.outputs, action)
        )
    return findings
