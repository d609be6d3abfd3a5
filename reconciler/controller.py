"""The controller: reconcile on a schedule, as Argo CD's application controller does.

Two apscheduler jobs, each never overlapping itself:

- **reconcile**, every `interval`: fetch the git remotes when asked (so `--ref origin/main`
  follows the branch people merge into), load the desired state, plan, and apply the use
  cases whose `syncPolicy.automated` is true, and those with a rollout in progress for the
  current desired state (someone already approved it). The others are reported OutOfSync and
  wait for `reconciler apply`. Each cycle starts from scratch (level-triggered): a rollout
  paused for lack of traffic tries its step again, drift of a self-healing use case is
  healed, a candidate rejected for this desired state is not retried (the plan knows), and a
  newer commit gets its chance. A rollout is advanced one step per cycle, never waited on:
  when it asks to be called again sooner than the interval, the next cycle is brought forward.
- **guardrail watch**, every `watch_interval`: judge recent live outputs and roll back a
  version whose rate of critical findings is too high.
- **discovery**, each minute: discover and propose for the use cases whose
  `spec.discovery.schedule` has come round (`reconciler.propose.cycle`).

A failure in one cycle is reported and the next cycle runs as planned; the controller never
dies of a bad commit or an unreachable registry. A use case that failed for a temporary cause
(MLflow or the gateway unreachable, a lock held) is retried with exponential backoff; one that
failed for a permanent cause is not retried until its desired state changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.apply.context import ApplyContext
from reconciler.apply.guardrail_watch import WatchFinding, watch_guardrails
from reconciler.apply.plan_runner import apply_plan
from reconciler.apply.use_case_runner import UseCaseOutcome
from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.errors import ReconcilerError, SourceError
from reconciler.health import Health
from reconciler.plan.model import Action, Plan
from reconciler.planning import make_plan
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState

log = logging.getLogger(__name__)

ContextFactory = Callable[[Path, DesiredState, Settings], ApplyContext]
DISCOVERY_CHECK_SECONDS = 60.0

_BACKOFF_FIRST_SECONDS = 30.0
_BACKOFF_MAX_SECONDS = 3600.0


@dataclass(frozen=True)
class CycleReport:
    """What one reconcile cycle did."""

    commit: str | None
    applied: dict[str, Health] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    waiting: tuple[str, ...] = ()  # out of sync, not automated: a person applies them
    in_sync: tuple[str, ...] = ()
    backing_off: tuple[str, ...] = ()  # failed for a temporary cause; retried later
    held: tuple[str, ...] = ()  # failed for a permanent cause; waits for a new desired state
    requeue_after: float | None = None  # the soonest a rollout wants to be advanced again
    error: str | None = None


@dataclass
class Retries:
    """Per use case: when it may be tried again after a failure (the controller's memory)."""

    clock: Clock = SYSTEM_CLOCK
    not_before: dict[str, float] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    permanent: dict[str, str] = field(default_factory=dict)  # use case -> failed digest

    def allowed(self, name: str, digest: str) -> bool:
        if self.permanent.get(name) == digest:
            return False
        return self.clock.now() >= self.not_before.get(name, 0.0)

    def record(self, outcome: UseCaseOutcome, digest: str) -> None:
        name = outcome.use_case
        if outcome.health is not Health.DEGRADED:
            self.not_before.pop(name, None)
            self.attempts.pop(name, None)
            self.permanent.pop(name, None)
        elif outcome.retryable:
            attempt = self.attempts.get(name, 0) + 1
            self.attempts[name] = attempt
            delay = min(_BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1), _BACKOFF_MAX_SECONDS)
            self.not_before[name] = self.clock.now() + delay
        else:
            self.permanent[name] = digest


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
    retries: Retries | None = None,
) -> CycleReport:
    """Plan, and apply what is automated or already rolling out. Errors become `error`."""
    retries = retries or Retries()
    try:
        if fetch:
            fetch_remotes(repo)
        made = make_plan(repo, ref, settings, local_traffic=True)
        if made.plan is None or made.desired is None:
            shown = "; ".join(d.render() for d in made.diagnostics[:5])
            return CycleReport(None, error=f"the desired state is invalid: {shown}")
        desired, plan = made.desired, made.plan
        context = make_context(repo, desired, settings)
        rolling = {
            u.name
            for u in desired.use_cases
            if (state := context.journal.rollout(u.name)) is not None
            and state.active
            and state.digest == desired.identities[u.name].digest
        }
        eligible = {u.name for u in desired.use_cases if u.spec.sync_policy.automated} | rolling
        pending = [name for name in plan.use_cases() if _pending(plan, name)]
        digests = {name: desired.identities[name].digest for name in pending}
        wanted = [name for name in pending if name in eligible]
        to_apply = [name for name in wanted if retries.allowed(name, digests[name])]
        report = CycleReport(
            desired.source.commit,
            waiting=tuple(name for name in pending if name not in eligible),
            in_sync=tuple(name for name in plan.use_cases() if name not in pending),
            backing_off=tuple(
                n for n in wanted if n not in to_apply and retries.permanent.get(n) != digests[n]
            ),
            held=tuple(n for n in wanted if retries.permanent.get(n) == digests[n]),
        )
        if not to_apply:
            return report
        # The plan was made a moment ago from this very observation; another reconciler
        # moving things in between is caught by each change's precondition.
        result = apply_plan(
            plan.only(set(to_apply)),
            context,
            lock_timeout=lock_timeout,
            check_stale=False,
            parallelism=parallelism,
        )
        for outcome in result.outcomes:
            retries.record(outcome, digests[outcome.use_case])
        requeues = [o.requeue_after for o in result.outcomes if o.requeue_after is not None]
        return CycleReport(
            report.commit,
            applied={o.use_case: o.health for o in result.outcomes},
            messages={o.use_case: o.message for o in result.outcomes},
            waiting=report.waiting,
            in_sync=report.in_sync,
            backing_off=report.backing_off,
            held=report.held,
            requeue_after=min(requeues, default=None),
        )
    except ReconcilerError as exc:
        return CycleReport(None, error=str(exc))


def _pending(plan: Plan, name: str) -> bool:
    return any(c.action is not Action.NOOP for c in plan.changes_for(name))


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

    scheduler = BackgroundScheduler()
    retries = Retries()

    def reconcile() -> None:
        report = reconcile_once(
            config.repo,
            config.ref,
            settings,
            make_context=make_context,
            fetch=config.fetch,
            parallelism=config.parallelism,
            retries=retries,
        )
        say(describe(report))
        soonest = min(
            [s for s in (report.requeue_after, _backoff_due(retries)) if s is not None],
            default=None,
        )
        if soonest is not None and soonest < config.interval_seconds:
            # A rollout (or a retry) is due before the next regular cycle: bring it forward.
            scheduler.modify_job(
                "reconcile",
                next_run_time=datetime.now(UTC) + timedelta(seconds=max(1.0, soonest)),
            )

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

    # max_instances=1 and coalesce: a cycle is never run twice at once, and missed runs
    # collapse into one.
    now = datetime.now(UTC)
    for job_id, job, every in (
        ("reconcile", reconcile, config.interval_seconds),
        ("watch", watch, config.watch_interval_seconds),
        ("discover", discover, DISCOVERY_CHECK_SECONDS),
    ):
        scheduler.add_job(
            job,
            "interval",
            id=job_id,
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


def _backoff_due(retries: Retries) -> float | None:
    if not retries.not_before:
        return None
    return max(0.0, min(retries.not_before.values()) - retries.clock.now())


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
    if report.backing_off:
        parts.append("retrying later: " + ", ".join(report.backing_off))
    if report.held:
        parts.append("failed for this desired state: " + ", ".join(report.held))
    if report.in_sync:
        parts.append("in sync: " + ", ".join(report.in_sync))
    return "reconcile: " + "; ".join(parts)
