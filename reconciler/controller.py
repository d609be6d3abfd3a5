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
  version whose rate of critical findings is too high; an engagement check's window over
  its `windowViolationRate` gets that check's intervention (`apply.guardrail_watch`).
- **discovery**, each minute: discover and propose for the use cases whose
  `spec.discovery.schedule` has come round (`reconciler.propose.cycle`).

Drift that appears (or changes) is told to the desired state's webhooks once, not every
cycle. `Controller` runs the jobs and lets `reconciler serve` ask for a cycle now (never
overlapping a running one), wait for it, and see each cycle's report.

A failure in one cycle is reported and the next cycle runs as planned; the controller never
dies of a bad commit or an unreachable registry. A use case that failed for a temporary cause
(MLflow or the gateway unreachable, a lock held) is retried with exponential backoff; one that
failed for a permanent cause is not retried until its desired state changes.
"""

from __future__ import annotations

import logging
import threading
import time
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
from reconciler.notifications.drift import DriftMemory
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
    drift: DriftMemory | None = None,
) -> CycleReport:
    """Plan, and apply what is automated or already rolling out. Errors become `error`."""
    retries = retries or Retries()
    drift = drift or DriftMemory()
    try:
        if fetch:
            fetch_remotes(repo)
        made = make_plan(repo, ref, settings, local_traffic=True)
        if made.plan is None or made.desired is None:
            shown = "; ".join(d.render() for d in made.diagnostics[:5])
            return CycleReport(None, error=f"the desired state is invalid: {shown}")
        desired, plan = made.desired, made.plan
        context = make_context(repo, desired, settings)
        for news in drift.news(plan, desired, at=context.clock.now()):
            context.notifier.notify(news)
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
    ref: str | None = None,
) -> Sequence[WatchFinding]:
    """Judge recent live outputs against the desired state at `ref` (the one reconciled)."""
    from reconciler.spec.loader import load_desired_state

    loaded = load_desired_state(repo, ref)
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


class Controller:
    """The three jobs on one scheduler, each never overlapping itself; missed runs coalesce."""

    def __init__(
        self,
        config: ControllerSettings,
        settings: Settings,
        *,
        make_context: ContextFactory,
        say: Callable[[str], None],
        on_cycle: Callable[[CycleReport, float], None] | None = None,
    ) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.config = config
        self.settings = settings
        self.make_context = make_context
        self.say = say
        self.on_cycle = on_cycle  # (report, seconds it took), after every reconcile
        self.scheduler = BackgroundScheduler()
        self.retries = Retries()
        self.drift = DriftMemory()
        self.started = datetime.now(UTC)
        self.last_report: CycleReport | None = None
        self._cycle = threading.Condition()
        self._begun = 0  # reconcile cycles begun, and finished
        self._finished = 0
        self._running = False
        self._asked = False  # a cycle was asked for while one ran: run another after it
        # Whether the scheduler runs the jobs: before, the first cycle is due at start anyway;
        # after shutdown has begun, nothing may touch the scheduler (see `shutdown`).
        self._started = False
        self._stopping = False

    def start(self) -> None:
        # max_instances=1 and coalesce: a job never runs twice at once, and missed runs
        # collapse into one.
        now = datetime.now(UTC)
        for job_id, job, every in (
            ("reconcile", self._reconcile, self.config.interval_seconds),
            ("watch", self._watch, self.config.watch_interval_seconds),
            ("discover", self._discover, DISCOVERY_CHECK_SECONDS),
        ):
            self.scheduler.add_job(
                job,
                "interval",
                id=job_id,
                seconds=every,
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        with self._cycle:
            self.scheduler.start()
            self._started = True

    def shutdown(self) -> None:
        """Start no new job; wait for the running ones to finish their step."""
        # apscheduler's shutdown holds its job-store lock while it waits for running jobs: a
        # job that reschedules itself then would wait on that lock forever. So no job touches
        # the scheduler once this flag is up (set and read under the same lock).
        with self._cycle:
            self._stopping = True
        self.scheduler.shutdown(wait=True)

    def reconcile_now(self) -> int:
        """Ask for a reconcile now; the number of the cycle that will include the request."""
        with self._cycle:
            if self._running:
                self._asked = True  # the running cycle may have read git before the request
            elif self._started and not self._stopping:
                self.scheduler.modify_job("reconcile", next_run_time=datetime.now(UTC))
            return self._begun + 1

    def wait_for_cycle(self, number: int, timeout: float) -> tuple[int, CycleReport] | None:
        """Once cycle `number` has finished: the last finished cycle (`number` or a later
        one) and its report; None after `timeout` seconds."""
        with self._cycle:
            if self._cycle.wait_for(lambda: self._finished >= number, timeout):
                assert self.last_report is not None  # a finished cycle left its report
                return self._finished, self.last_report
        return None

    @property
    def cycles(self) -> tuple[int, int]:
        """(begun, finished) reconcile cycles."""
        with self._cycle:
            return self._begun, self._finished

    @property
    def last_cycle(self) -> tuple[int, CycleReport | None]:
        """The number of the last finished cycle and its report, read together."""
        with self._cycle:
            return self._finished, self.last_report

    def _reconcile(self) -> None:
        with self._cycle:
            self._running, self._asked = True, False
            self._begun += 1
            number = self._begun
        began = time.monotonic()
        try:
            report = reconcile_once(
                self.config.repo,
                self.config.ref,
                self.settings,
                make_context=self.make_context,
                fetch=self.config.fetch,
                parallelism=self.config.parallelism,
                retries=self.retries,
                drift=self.drift,
            )
        except Exception as exc:  # a bug: reported like any failed cycle; the next one runs
            log.exception("reconcile cycle %d failed", number)
            report = CycleReport(None, error=f"internal error: {type(exc).__name__}: {exc}")
        took = time.monotonic() - began
        with self._cycle:
            self._running = False
            self._finished = number
            self.last_report = report
            asked = self._asked
            self._cycle.notify_all()
        self.say(describe(report))
        if self.on_cycle is not None:
            self.on_cycle(report, took)
        soonest = min(
            [s for s in (report.requeue_after, _backoff_due(self.retries)) if s is not None],
            default=None,
        )
        if asked:
            soonest = 0.0
        if soonest is not None and soonest < self.config.interval_seconds:
            # A rollout, a retry or a request is due before the next regular cycle.
            with self._cycle:
                if not self._stopping:
                    self.scheduler.modify_job(
                        "reconcile",
                        next_run_time=datetime.now(UTC) + timedelta(seconds=max(1.0, soonest)),
                    )

    def _watch(self) -> None:
        try:
            findings = watch_once(
                self.config.repo,
                self.settings,
                make_context=self.make_context,
                window_seconds=self.config.watch_window_seconds,
                critical_rate_limit=self.config.critical_rate_limit,
                min_outputs=self.config.min_outputs,
                ref=self.config.ref,
            )
        except ReconcilerError as exc:
            self.say(f"guardrail watch failed: {exc}")
            return
        if findings:
            windows = sum(1 for f in findings if f.check is not None)
            self.say(
                f"guardrail watch: {len(findings) - windows} version(s) over the critical rate, "
                f"{windows} engagement window(s) over their limit"
            )

    def _discover(self) -> None:
        # Each use case's `spec.discovery.schedule` decides; the job only looks every minute.
        from reconciler.propose.cycle import run_discovery_cycle

        run_discovery_cycle(
            self.config.repo,
            self.settings,
            now=datetime.now(UTC),
            started=self.started,
            say=self.say,
        )


def run_controller(
    config: ControllerSettings,
    settings: Settings,
    *,
    make_context: ContextFactory,
    say: Callable[[str], None],
    stop: threading.Event,
) -> None:
    """Run the jobs until `stop` is set (the CLI sets it on SIGINT / SIGTERM)."""
    controller = Controller(config, settings, make_context=make_context, say=say)
    controller.start()
    try:
        stop.wait()
    finally:
        controller.shutdown()


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
