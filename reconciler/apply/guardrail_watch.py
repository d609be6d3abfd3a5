"""The guardrail watch: act on a serving version whose guardrail rates are too high.

Reads what each live version of each use case answered recently (the gateway's request log),
judges it with the use case's guardrail policies (`guardrails.monitor`: the inline guard's
findings where it ran, a fresh check otherwise), and acts on two rates:

- a version whose rate of critical outputs (findings mapped to the `rollback` intervention)
  exceeds the limit is rolled back as an aborted canary is: all traffic back to the last good
  version, and the offender tagged rejected for this desired state so the next plan does not
  bring it back;
- a version whose share of outputs with an unhealthy engagement signal exceeds an engagement
  check's ``windowViolationRate`` gets that check's intervention applied to the version: its
  policy's `rollback` rolls it back the same way; any other intervention already acted on each
  output inline, so the window is reported and notified for a person to judge.

Every finding is reported and notified. Runs under the use case's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.apply.aliases import rollback
from reconciler.apply.context import ApplyContext, UseCaseRun
from reconciler.lineage import Alias
from reconciler.notifications.events import Notification
from reconciler.spec.model import Intervention
from reconciler.spec.notifications import NotificationEvent


@dataclass(frozen=True)
class WatchFinding:
    use_case: str
    version: str
    rate: float
    limit: float
    outputs: int
    action: str
    check: str | None = None  # the engagement check whose window this is; None: critical rate


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
    rolled_back: set[tuple[str, str]] = set()
    for rates in report.exceeding:
        reason = (
            f"critical guardrail violation rate {rates.critical_rate:.3f} > "
            f"{critical_rate_limit:g} over {rates.outputs} outputs"
        )
        action = _roll_back(context, rates.use_case, rates.version, reason)
        rolled_back.add((rates.use_case, rates.version))
        finding = WatchFinding(
            rates.use_case,
            rates.version,
            rates.critical_rate,
            critical_rate_limit,
            rates.outputs,
            action,
        )
        _tell(context, NotificationEvent.GUARDRAIL_CRITICAL_RATE, finding, reason)
        findings.append(finding)
    for window in report.engagement_exceeding:
        reason = (
            f"engagement check {window.name}: unhealthy share {window.rate:.3f} > "
            f"windowViolationRate {window.limit:g} over {window.outputs} outputs"
        )
        key = (window.use_case, window.version)
        if window.intervention is not Intervention.ROLLBACK:
            action = f"{window.intervention.value} on each output; reported"
        elif key in rolled_back:
            action = "rolled back for its critical rate"
        else:
            action = _roll_back(context, window.use_case, window.version, reason)
            rolled_back.add(key)
        finding = WatchFinding(
            window.use_case,
            window.version,
            window.rate,
            window.limit,
            window.outputs,
            action,
            check=window.name,
        )
        _tell(context, NotificationEvent.GUARDRAIL_ENGAGEMENT_WINDOW, finding, reason)
        findings.append(finding)
    return findings


def _roll_back(context: ApplyContext, name: str, version: str, reason: str) -> str:
    """Roll ``version`` of use case ``name`` back to the last good version; what was done."""
    use_case = context.desired.use_case(name)
    run = UseCaseRun(context, use_case, context.desired.identities[name])
    with context.locks.hold(name, timeout=60, clock=context.clock):
        model = run.model()
        aliases = model.aliases if model else {}
        champion = aliases.get(Alias.CHAMPION.value)
        if version == aliases.get(Alias.CHALLENGER.value) and champion:
            restore: str | None = champion
        elif version == champion:
            restore = aliases.get(Alias.PREVIOUS.value)
        else:
            restore = None
        if restore is None or (model is not None and model.version(restore) is None):
            return "no earlier version to restore: left serving, reported"
        rollback(run, restore=restore, rejected=version, reason=reason)
        return f"rolled back to {restore}"


def _tell(
    context: ApplyContext, event: NotificationEvent, finding: WatchFinding, reason: str
) -> None:
    message = f"version {finding.version}: {reason}; {finding.action}"
    context.report(f"{finding.use_case}: {message}")
    details: dict[str, object] = {
        "version": finding.version,
        "rate": finding.rate,
        "limit": finding.limit,
        "outputs": finding.outputs,
        "action": finding.action,
    }
    if finding.check is None:
        details["critical_rate"] = finding.rate
    else:
        details["check"] = finding.check
    context.notifier.notify(
        Notification(event, finding.use_case, message, context.clock.now(), details)
    )
