"""Wiring for the apply-family commands: settings → adapters → engine. No decisions here.

This is the composition place: the registry client, the route table, the journal, the clock,
the model builder and the metrics source are built here once and passed in, so the engine
and a test can substitute real alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.apply.context import ApplyContext, Reporter, UseCaseRun
from reconciler.apply.guardrail_watch import WatchFinding
from reconciler.apply.journal import Cause, Journal
from reconciler.apply.locks import locks_for
from reconciler.apply.plan_runner import apply_plan
from reconciler.apply.ports import Notifier
from reconciler.apply.status import UseCaseStatus, use_case_status
from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.errors import ReconcilerError
from reconciler.health import Health
from reconciler.jobs.selection import job_runner
from reconciler.lineage import Alias
from reconciler.plan import planfile
from reconciler.plan.model import Plan
from reconciler.plan.render import render_text
from reconciler.planning import make_plan
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.rollout.state import Control
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore

# What a break-glass write (the API's, or `reconciler rollback`) says of the desired state.
CATCH_UP = "the desired state in git must catch up"


def journal(settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK) -> Journal:
    settings = settings or Settings.from_environment()
    return Journal(StateDatabase.of(settings), clock=clock)


def _load(repo: Path, ref: str | None) -> DesiredState:
    loaded = load_desired_state(repo, ref)
    if loaded.state is None:
        for diagnostic in loaded.diagnostics:
            click.echo(diagnostic.render(), err=True)
        raise ReconcilerError(f"{len(loaded.diagnostics)} error(s) in the desired state")
    return loaded.state


def build_context(
    repo: Path,
    desired: DesiredState,
    settings: Settings,
    *,
    time_scale: float = 1.0,
    drive_rollouts: bool = True,
    clock: Clock = SYSTEM_CLOCK,
    notifier: Notifier | None = None,
) -> ApplyContext:
    """`notifier`: default, the desired state's webhooks over this process's dispatcher."""
    import os

    from reconciler.apply.model_builder import MlflowModelBuilder
    from reconciler.apply.request_log_metrics import RequestLogMetrics
    from reconciler.notifications.webhooks import command_notifier

    registry = MlflowRegistry(settings.tracking_uri, settings.registry_uri)
    database = StateDatabase.of(settings)
    return ApplyContext(
        repo=repo,
        state_dir=settings.state_dir,
        desired=desired,
        registry=registry,
        database=database,
        locks=locks_for(database, settings.state_dir),
        traffic=TrafficStore(database, clock=clock),
        journal=Journal(database, clock=clock),
        clock=clock,
        builder=MlflowModelBuilder(
            repo=repo,
            desired=desired,
            settings=settings,
            registry=registry,
            jobs=job_runner(settings),
        ),
        metrics=RequestLogMetrics(database),
        report=_EchoReporter(),
        time_scale=time_scale,
        drive_rollouts=drive_rollouts,
        notifier=notifier or command_notifier(desired, settings.state_dir, environ=os.environ),
    )


class _EchoReporter(Reporter):
    def __call__(self, line: str) -> None:
        super().__call__(line)
        click.echo(line)


def _saved_plan(
    path: Path, repo: Path, ref: str | None, only: list[str] | None
) -> tuple[Plan, DesiredState]:
    plan = planfile.load(path)
    source = plan.source
    # Read exactly the commit the plan was made from, when it was made from one.
    commit = source.commit if source.commit and not source.dirty else None
    try:
        desired = _load(repo, ref or commit)
    except ReconcilerError as exc:
        raise ReconcilerError(
            f"cannot read the desired state the saved plan {path} was made from "
            f"({exc}); run `reconciler plan` again"
        ) from None
    if only:
        unknown = sorted(set(only) - set(plan.use_cases()))
        if unknown:
            raise ReconcilerError(
                f"the saved plan has no changes for {', '.join(unknown)} "
                f"(it covers {', '.join(plan.use_cases()) or 'nothing'})"
            )
        plan = plan.only(set(only))
    return plan, desired


def run_apply(
    *,
    planfile: Path | None,
    repo: Path,
    ref: str | None,
    auto_approve: bool,
    only: list[str] | None,
    lock_timeout: float,
    time_scale: float,
    interactive: bool,
    parallelism: int = 1,
) -> int:
    settings = Settings.from_environment()
    if planfile is not None:
        plan, desired = _saved_plan(planfile, repo, ref, only)
    else:
        made = make_plan(repo, ref, settings, only=only, local_traffic=True)
        if made.plan is None or made.desired is None:
            for diagnostic in made.diagnostics:
                click.echo(diagnostic.render(), err=True)
            return 1
        plan, desired = made.plan, made.desired
        click.echo(render_text(plan, colour=interactive), nl=False)
        if not plan.has_changes:
            return 0
        if not auto_approve:
            if not interactive:
                raise ReconcilerError("no terminal to confirm on: pass --auto-approve")
            answer = click.prompt("Apply these changes? Only 'yes' will be accepted", default="")
            if answer != "yes":
                click.echo("Apply cancelled.")
                return 1
    context = build_context(repo, desired, settings, time_scale=time_scale)
    result = apply_plan(plan, context, lock_timeout=lock_timeout, parallelism=parallelism)
    click.echo("")
    for outcome in result.outcomes:
        click.echo(f"{outcome.use_case:<24} {outcome.health.value:<12} {outcome.message}")
    return 1 if result.health is Health.DEGRADED else 0


def collect_status(repo: Path, ref: str | None) -> list[UseCaseStatus]:
    settings = Settings.from_environment()
    made = make_plan(repo, ref, settings)
    if made.plan is None or made.desired is None or made.observed is None:
        raise ReconcilerError("the desired state is invalid; run `reconciler validate`")
    unservable = None
    if settings.gateway_url:
        from reconciler.traffic.remote import unservable_targets

        unservable = unservable_targets(settings.gateway_url)
    database = StateDatabase.of(settings)
    return use_case_status(
        made.desired,
        made.observed,
        made.plan,
        Journal(database),
        locks=locks_for(database, settings.state_dir),
        unservable=unservable,
    )


def known_use_case(repo: Path, use_case: str) -> DesiredState:
    desired = _load(repo, None)
    names = [u.name for u in desired.use_cases]
    if use_case not in names:
        raise ReconcilerError(f"unknown use case {use_case} (known: {', '.join(names)})")
    return desired


# A pause may wait for the next rollout (hold it at its first step, as a change freeze would);
# the others act on one rollout, and kept for a later one they would promote or reject a
# candidate no operator has seen.
CONTROLS_NEEDING_A_ROLLOUT = frozenset({Control.PROMOTE, Control.ABORT, Control.RESUME})


def request_control(repo: Path, use_case: str, control: Control) -> str:
    """Ask the running rollout of `use_case` (a pause: or the next) to pause, resume, abort
    or promote. A control not obeyed by the time its rollout ends is dropped with it."""
    known_use_case(repo, use_case)
    store = journal()
    rollout = store.rollout(use_case)
    running = rollout is not None and rollout.active
    if not running and control in CONTROLS_NEEDING_A_ROLLOUT:
        raise ReconcilerError(
            f"no rollout of {use_case} is in progress: {control.value} acts on a running "
            "rollout only (see `reconciler status`)"
        )
    store.request(use_case, control)
    if rollout is None or not running:
        return (
            f"pause requested for {use_case}; no rollout is in progress, so the next one "
            "holds at its first step until `reconciler resume`"
        )
    return (
        f"{control.value} requested for {use_case}; the rollout of {rollout.candidate} "
        f"({rollout.stage.label}, {rollout.phase.value}) obeys it at its next step"
    )


def manual_rollback(repo: Path, use_case: str, to_version: str | None) -> str:
    """`reconciler rollback`: break-glass from the command line, told as the API's is."""
    from reconciler.notifications.events import Notification
    from reconciler.spec.notifications import NotificationEvent

    settings = Settings.from_environment()
    desired = known_use_case(repo, use_case)
    context = build_context(repo, desired, settings)
    done = roll_back_by_hand(
        context,
        use_case,
        to_version,
        detail=f"break-glass rollback from the command line; {CATCH_UP}",
    )
    recorded = f"history ({CATCH_UP})" if done.done else "-"
    context.notifier.notify(
        Notification(
            NotificationEvent.BREAK_GLASS,
            use_case,
            f"rollback from the command line: {done.message}; recorded in {recorded}",
            context.clock.now(),
            {"action": "rollback", "done": done.done, "recorded": recorded, "pull_request": ""},
        )
    )
    return done.message


@dataclass(frozen=True)
class ManualRollback:
    use_case: str
    champion: str  # the version rolled back from (now rejected for this desired state)
    restored: str
    message: str
    done: bool = True  # False: `restored` was champion already, nothing changed


def roll_back_by_hand(
    context: ApplyContext,
    use_case: str,
    to_version: str | None,
    *,
    reason: str = "rolled back by an operator",
    detail: str | None = None,
    lock_timeout: float = 0.0,
) -> ManualRollback:
    """Restore `to_version` (default: previous) with all traffic, now, under the use case's
    lock; the champion it replaces is rejected for this desired state."""
    desired = context.desired
    spec = desired.use_case(use_case)
    run = UseCaseRun(context, spec, desired.identities[use_case])
    with context.locks.hold(use_case, timeout=lock_timeout, clock=context.clock):
        model = run.model()
        if model is None:
            raise ReconcilerError(f"{spec.spec.registered_model} is not registered yet")
        champion = model.aliases.get(Alias.CHAMPION.value)
        restore = to_version or model.aliases.get(Alias.PREVIOUS.value)
        if champion is None:
            raise ReconcilerError(f"{use_case} has no champion to roll back from")
        if restore is None or model.version(restore) is None:
            raise ReconcilerError(f"no version {restore or '(previous)'} to roll back to")
        if restore == champion:
            return ManualRollback(
                use_case, champion, restore, f"{use_case}: {restore} is already champion", False
            )
        from reconciler.apply.aliases import rollback

        rollback(
            run,
            restore=restore,
            rejected=champion,
            reason=reason,
            cause=Cause.MANUAL,
            detail=detail,
        )
    return ManualRollback(
        use_case,
        champion,
        restore,
        f"{use_case}: champion {champion} → {restore}; {champion} rejected for this desired state",
    )


def run_guardrail_watch(
    repo: Path, since: str, critical_rate_limit: float, min_outputs: int
) -> list[WatchFinding]:
    from reconciler.apply.guardrail_watch import watch_guardrails
    from reconciler.spec.durations import duration_seconds

    try:
        window = duration_seconds(since)
    except ValueError as exc:
        raise ReconcilerError(str(exc)) from None
    settings = Settings.from_environment()
    context = build_context(repo, _load(repo, None), settings)
    return watch_guardrails(
        context,
        since=context.clock.now() - window,
        critical_rate_limit=critical_rate_limit,
        min_outputs=min_outputs,
    )
