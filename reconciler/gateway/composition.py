"""Where a gateway's parts are made and joined: the one composition place.

The route table, the model cache (loading versions through the resolver and the backends),
the route watcher, the request log, the metrics and the guard queue are built here and handed
to `Gateway`, which builds none of them. Any part can be given instead of the default.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from reconciler.gateway.backends.base import Backend
from reconciler.gateway.backends.factory import backend_for
from reconciler.gateway.catalog import UseCaseCatalog, load_catalog
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.guard import GuardQueue, OutputGuard, PassThroughGuard, StagedGuard
from reconciler.gateway.metrics import GatewayMetrics
from reconciler.gateway.model_cache import ModelCache
from reconciler.gateway.request_log import RequestLog
from reconciler.gateway.route_watcher import RouteWatcher
from reconciler.gateway.service import Gateway
from reconciler.gateway.targets import (
    RegistryTargetResolver,
    Target,
    TargetDescription,
    TargetResolver,
)
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore

BackendFactory = Callable[[TargetDescription, GatewayConfig], Backend]


class BackendLoader:
    """What the model cache calls to load a version: describe it, build its backend, start it."""

    def __init__(
        self, resolver: TargetResolver, factory: BackendFactory, config: GatewayConfig
    ) -> None:
        self.resolver = resolver
        self.factory = factory
        self.config = config

    async def __call__(self, target: Target) -> Backend:
        description = await asyncio.to_thread(self.resolver.describe, target)
        backend = self.factory(description, self.config)
        try:
            await backend.start()
        except BaseException:
            await backend.close()
            raise
        return backend


GUARDRAIL_STAGE_COUNTER = "reconciler_guardrail_outputs_total"


def _stage_samples(
    guard: StagedGuard,
) -> Callable[[], list[tuple[tuple[tuple[str, str], ...], float]]]:
    def read() -> list[tuple[tuple[tuple[str, str], ...], float]]:
        return [
            ((("stage", stage),), float(count)) for stage, count in guard.outputs_by_stage().items()
        ]

    return read


def build_gateway(
    config: GatewayConfig,
    *,
    catalog: UseCaseCatalog | None = None,
    resolver: TargetResolver | None = None,
    guard: OutputGuard | None = None,
    backend_factory: BackendFactory = backend_for,
    database: StateDatabase | None = None,
    store: TrafficStore | None = None,
    request_log: RequestLog | None = None,
    clock: Callable[[], float] = time.time,
) -> Gateway:
    """A gateway with the default parts, or the ones given. The route table and the request
    log live in `database` (default: the one `config` names): on a shared PostgreSQL store,
    every replica built here serves the same routes and writes into the same log."""
    database = database or StateDatabase(config.database)
    if catalog is None:
        catalog = load_catalog(config.repo) if config.repo is not None else UseCaseCatalog()
    if resolver is None:
        resolver = RegistryTargetResolver(catalog, config.tracking_uri, config.registry_uri)
    store = store or TrafficStore(database)
    watcher: RouteWatcher | None = None

    def pinned() -> frozenset[Target]:
        # Asked at eviction time, once the watcher exists: what live routes name.
        return watcher.pinned_targets() if watcher is not None else frozenset()

    cache = ModelCache(
        BackendLoader(resolver, backend_factory, config),
        max_loaded=config.max_loaded_models,
        pinned=pinned,
    )
    watcher = RouteWatcher(
        store, cache, use_cases=lambda: catalog.names, poll_seconds=config.route_poll_seconds
    )
    metrics = GatewayMetrics()
    if isinstance(guard, StagedGuard):
        metrics.add_counter(
            GUARDRAIL_STAGE_COUNTER,
            "Outputs checked by the guardrails, by the last cascade stage they reached "
            "(static embeddings only, or the full encoder too).",
            _stage_samples(guard),
        )
    return Gateway(
        config=config,
        catalog=catalog,
        resolver=resolver,
        store=store,
        cache=cache,
        watcher=watcher,
        request_log=request_log
        or RequestLog(
            database,
            retention_days=config.retention_days,
            clock=clock,
            queue_limit=config.request_log_queue_limit,
            stall_seconds=config.request_log_stall_seconds,
        ),
        metrics=metrics,
        guard_queue=GuardQueue(guard or PassThroughGuard()),
        clock=clock,
    )
