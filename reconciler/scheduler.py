"""The controller: reconcile on a schedule, as Argo CD's application controller does.

Two apscheduler jobs, each never overlapping itself:

- **reconcile**, every `interval`: fetch the git remotes when asked (so `--ref origin/main`
  follows the branch people merge into), load the desired state, plan, and apply the use
  cases whose `syncPolicy.automated` is true. The others are reported OutOfSync and wait for
  `reconciler apply` (a person, or the apply-on-merge workflow). Each cycle starts from
  scratch (level-triggered): a rollout paused for lack of traffic resumes at its step, drift
  of a self-healing use case is healed, and a candidate rejected for this desired state is not
  retried (the plan knows), while a newer commit gets its chance.
- **guardrail watch**, every `watch_interval`: judge recent live outputs and roll back a
  version whose rate of critical findings is too high.
- **discovery**, each minute: discover and propose for the use cases whose
  `spec.discovery.schedule` has come round (`reconciler.propose.cycle`).

A failure in one cycle is reported and the next cycle runs as planned; the controller never
dies of a bad commit or an unreachable registry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reconciler.apply.engine import apply_plan
from reconciler.apply.guardrail_watch import WatchFinding, watch_guardrails
from reconciler.apply.run import ApplyContext
from reconciler.errors import ReconcilerError, SourceError
from reconciler.health import Health
from reconciler.plan.model import Plan
from reconciler.planning import make_plan
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState

log = logging.getLogger(__name__)

ContextFactory = Callable[[Path, DesiredState, Settings], ApplyContext]
DISCOVERY_CHECK_SECONDS = 60.0


@dataclass(frozen=True)
class CycleReport:
    """What one reconcile cycle did."""

    commit: str | None
    applied: dict[str, Health] = field(default_factory=dict)
    waiting: tuple[str, ...] = ()  # out of sync, not automated: a person applies them
    in_sync: tuple[str, ...] = ()
    error: str | None = None


def fetch_remotes(repo: Path) -> None:
    """`git fetch` every remote of `repo`, so remote-tracking refs show what was merged."""
    import git

    try:
        for remote in git.Repo(repo).remotes:
            remote.fetch(prune=True)
    except (git.GitCommandError, git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise SourceError(f"cannot fetch the remotes of {repo}: {exc}") from exc


def reconcile_once(
    repo: Path,
    ref: str | None,
    settings: Settings,
    *,
    make_context: ContextFactory,
    fetch: bool = False,
    parallelism: int = 4,
    lock_timeout: float = 0.0,
) -> CycleReport:
    """Plan, and apply what is automated. Errors become the report's `error`."""
    try:
        if fetch:
            fetch_remotes(repo)
        made = make_plan(repo, ref, settings, local_traffic=True)
        if made.plan is None or made.desired is None:
            shown = "; ".join(d.render() for d in made.diagnostics[:5])
            return CycleReport(None, error=f"the desired state is invalid: {shown}")
        desired, plan = made.desired, made.plan
        automated = {u.name for u in desired.use_cases if u.spec.sync_policy.automated}
        pending = [name for name in plan.use_cases() if _pending(plan, name)]
        to_apply = [name for name in pending if name in automated]
        report = CycleReport(
            desired.source.commit,
            waiting=tuple(name for name in pending if name not in automated),
            in_sync=tuple(name for name in plan.use_cases() if name not in pending),
        )
        if not to_apply:
            return report
        only = plan.model_copy(
            update={"changes": tuple(c for c in plan.changes if c.use_case in to_apply)}
        )
        context = make_context(repo, desired, settings)
        # The plan was made a moment ago from this very observation; another reconciler
        # moving things in between is caught by each change's precondition.
        result = apply_plan(
            only, context, lock_timeout=lock_timeout, check_stale=False, parallelism=parallelism
        )
        return CycleReport(
            report.commit,
            applied={o.use_case: o.health for o in result.outcomes},
            waiting=report.waiting,
            in_sync=report.in_sync,
        )
    except ReconcilerError as exc:
        return CycleReport(None, error=str(exc))


def _pending(plan: Plan, name: str) -> bool:
    return any(c.action.value != "noop" for c in plan.changes_for(name))


def watch_once(
    repo: Path,
    settings: Settings,
    *,
    make_context: ContextFactory,
    window_seconds: float,
    critical_rate_limit: float,
    min_outputs: int,
) -> Sequence[WatchFinding]:
    from reconciler.spec.loader import load_desired_state

    loaded = load_desired_state(repo)
    if loaded.state is None:
        raise ReconcilerError("the desired state is invalid; run `reconciler validate`")
    context = make_context(repo, loaded.state, settings)
    return watch_guardrails(
        context,
        since=context.clock.now() - window_seconds,
        critical_rate_limit=critical_rate_limit,
        min_outputs=min_outputs,
    )


@dataclass(frozen=True)
class ControllerSettings:
    repo: Path
    ref: str | None
    fetch: bool
    interval_seconds: float
    watch_interval_seconds: float
    watch_window_seconds: float
    critical_rate_limit: float
    min_outputs: int
    parallelism: int


def run_controller(
    config: ControllerSettings,
    settings: Settings,
    *,
    make_context: ContextFactory,
    say: Callable[[str], None],
    stop: threading.Event,
) -> None:
    """Run both jobs until `stop` is set (the CLI sets it on SIGINT / SIGTERM)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    def reconcile() -> None:
        report = reconcile_once(
            config.repo,
            config.ref,
            settings,
            make_context=make_context,
            fetch=config.fetch,
            parallelism=config.parallelism,
        )
        say(describe(report))

    def watch() -> None:
        try:
            findings = watch_once(
                config.repo,
                settings,
                make_context=make_context,
                window_seconds=config.watch_window_seconds,
                critical_rate_limit=config.critical_rate_limit,
                min_outputs=config.min_outputs,
            )
        except ReconcilerError as exc:
            say(f"guardrail watch failed: {exc}")
            return
        if findings:
            say(f"guardrail watch: {len(findings)} version(s) over the critical rate")

    started = datetime.now(UTC)

    def discover() -> None:
        # Each use case's `spec.discovery.schedule` decides; the job only looks every minute.
        from reconciler.propose.cycle import run_discovery_cycle

        run_discovery_cycle(config.repo, settings, now=datetime.now(UTC), started=started, say=say)

    scheduler = BackgroundScheduler()
    # max_instances=1 and coalesce: a cycle that outlasts its interval (a half-hour bake) is
    # never run twice at once, and missed runs collapse into one.
    now = datetime.now(UTC)
    for job, every in (
        (reconcile, config.interval_seconds),
        (watch, config.watch_interval_seconds),
        (discover, DISCOVERY_CHECK_SECONDS),
    ):
        scheduler.add_job(
            job,
            "interval",
            seconds=every,
            next_run_time=now,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)


def describe(report: CycleReport) -> str:
    if report.error is not None:
        return f"reconcile failed: {report.error}"
    parts = [f"commit {report.commit[:12] if report.commit else '(working tree)'}"]
    if report.applied:
        parts.append(
            "applied " + ", ".join(f"{n} ({h.value})" for n, h in sorted(report.applied.items()))
        )
    if report.waiting:
        parts.append("out of sync, not automated: " + ", ".join(report.waiting))
    if report.in_sync:
        parts.append("in sync: " + ", ".join(report.in_sync))
    return "reconcile: " + "; ".join(parts)
