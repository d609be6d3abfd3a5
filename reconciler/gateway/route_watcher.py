"""Keeps the gateway's route plans in step with the route table, without a restart.

The watcher reads the table (one small read on a worker thread) every `poll_seconds`, and at
once when the store tells it a use case's routes changed: on a shared PostgreSQL store every
replica LISTENs for the NOTIFY a route write sends, so a change reaches all of them within
milliseconds, and polling remains the fallback should a notice be lost (a dropped
connection). When a use case's generation moved, it loads and warms every version the new
routes name *before* swapping the plan in; until then the old plan keeps serving. A swap
replaces one object reference, so requests already routed finish on the backend they were
given. A load that fails leaves the old plan serving and is retried on a later poll, with the
reason shown at /healthz and /admin/routes: per target (which version, which variable or
error, redacted), so a player's 503 and an operator's tools name the real cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.gateway.backends.base import failure_text
from reconciler.gateway.model_cache import ModelCache
from reconciler.gateway.routing import RoutePlan
from reconciler.gateway.targets import Target
from reconciler.observe.state import TrafficSnapshot
from reconciler.state_store.route_notices import RouteNotices
from reconciler.traffic.store import TrafficStore

log = logging.getLogger(__name__)

_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class PendingRoutes:
    """A newer generation the watcher could not switch to yet, and why."""

    generation: int
    reason: str
    retry_at: float
    versions: tuple[str, ...] = ()
    # Per version that could not be loaded: why (redacted, one line).
    failures: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetReadiness:
    """Whether one version a use case's routes name can serve, and if not, why."""

    version: str
    ready: bool
    serving: bool
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "ready": self.ready,
            "serving": self.serving,
            "error": self.error,
        }


class RouteWatcher:
    def __init__(
        self,
        store: TrafficStore,
        cache: ModelCache,
        *,
        use_cases: Callable[[], tuple[str, ...]],
        poll_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache = cache
        self.poll_seconds = poll_seconds
        self._use_cases = use_cases
        self._clock = clock
        self.plans: dict[str, RoutePlan] = {}
        self.pending: dict[str, PendingRoutes] = {}
        self._warming: dict[str, RoutePlan] = {}
        self._task: asyncio.Task[None] | None = None
        self._notices: RouteNotices | None = None
        self._changed = asyncio.Event()

    def plan(self, use_case: str) -> RoutePlan | None:
        return self.plans.get(use_case)

    def pinned_targets(self) -> frozenset[Target]:
        """Every target a served plan, or a plan being warmed to be served, sends traffic to:
        the model cache must not evict these."""
        plans = (*self.plans.values(), *self._warming.values())
        return frozenset(Target(p.use_case, v) for p in plans for v in p.versions)

    def readiness(self, use_case: str) -> tuple[TargetReadiness, ...]:
        """Every version the served plan or the pending generation names, and whether it can
        serve; a failed version carries its load error."""
        plan = self.plans.get(use_case)
        pending = self.pending.get(use_case)
        serving = plan.versions if plan is not None else ()
        named = dict.fromkeys((*serving, *(pending.versions if pending else ())))
        failures = pending.failures if pending else {}
        return tuple(
            TargetReadiness(
                version=version,
                ready=version not in failures,
                serving=version in serving,
                error=failures.get(version),
            )
            for version in named
        )

    def known_use_cases(self) -> tuple[str, ...]:
        return tuple(sorted({*self._use_cases(), *self.plans}))

    @property
    def listening(self) -> bool:
        """Whether route changes are being pushed to this watcher (else it only polls)."""
        return self._notices is not None and self._notices.listening.is_set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        changed = self._changed

        def wake(_use_case: str) -> None:
            loop.call_soon_threadsafe(changed.set)

        # Listen before the first read, so no change falls between the two.
        self._notices = await asyncio.to_thread(self.store.watch, wake)
        await self.refresh()
        self._task = asyncio.create_task(self._poll_forever(), name="route-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._notices is not None:
            await asyncio.to_thread(self._notices.stop)
            self._notices = None

    async def refresh(self) -> None:
        """Read the table once and switch every use case whose routes changed and are ready."""
        snapshots = await asyncio.to_thread(self._read_table)
        changed = [
            (name, snapshot)
            for name, snapshot in snapshots.items()
            if self._needs_switch(name, snapshot)
        ]
        if changed:
            await asyncio.gather(*(self._switch(name, snapshot) for name, snapshot in changed))

    def _read_table(self) -> Mapping[str, TrafficSnapshot]:
        names = sorted({*self._use_cases(), *self.store.use_cases()})
        return self.store.snapshot(names)

    def _needs_switch(self, use_case: str, snapshot: TrafficSnapshot) -> bool:
        current = self.plans.get(use_case)
        if current is not None and current.generation == snapshot.generation:
            return False
        if current is None and snapshot.generation == 0:
            self.plans[use_case] = RoutePlan.of(use_case, 0, ())
            return False
        pending = self.pending.get(use_case)
        return not (
            pending is not None
            and pending.generation == snapshot.generation
            and self._clock() < pending.retry_at
        )

    async def _switch(self, use_case: str, snapshot: TrafficSnapshot) -> None:
        plan = RoutePlan.of(use_case, snapshot.generation, snapshot.routes)
        if len(plan.versions) > self.cache.max_loaded:
            log.warning(
                "routes of %s name %d versions but --max-loaded-models is %d: all of them "
                "stay loaded while these routes are served, beyond that bound",
                use_case,
                len(plan.versions),
                self.cache.max_loaded,
            )
        # Pinned while warming too, so loading one of them cannot evict another.
        self._warming[use_case] = plan
        try:
            # Warm every target first: the new plan serves only once all of them can answer.
            outcomes = await asyncio.gather(
                *(self.cache.ensure(Target(use_case, v)) for v in plan.versions),
                return_exceptions=True,
            )
        finally:
            self._warming.pop(use_case, None)
        failures = {
            version: failure_text(outcome)
            for version, outcome in zip(plan.versions, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        }
        for outcome in outcomes:
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
        if failures:
            reason = "; ".join(f"version {v}: {why}" for v, why in failures.items())
            log.error(
                "routes of %s (generation %d) not applied yet: %s",
                use_case,
                snapshot.generation,
                reason,
            )
            self.pending[use_case] = PendingRoutes(
                snapshot.generation,
                reason,
                self._clock() + _RETRY_SECONDS,
                versions=plan.versions,
                failures=failures,
            )
            return
        self.pending.pop(use_case, None)
        self.plans[use_case] = plan
        log.info("serving %s from generation %d: %s", use_case, plan.generation, plan.live)
        # Targets the old plan named are unpinned now: bring the cache back under its bound.
        await self.cache.trim()

    async def _poll_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self.poll_seconds)
            self._changed.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a locked or missing store must not stop the watcher
                log.exception("reading the route table failed; retrying")
