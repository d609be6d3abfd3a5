"""Loaded backends, at most `max_loaded` at a time, least recently used evicted first.

A backend is lent out for the length of one request (`lease`). Evicting one that is still
lent only takes it out of the cache; it is closed when the last lease returns, so a route
change or a cache squeeze never fails a request in flight. Concurrent requests for a target
that is not loaded share one load.

Targets named by the route plans being served (or being warmed to be served) are pinned:
they are never evicted, since evicting one would only make a player's request reload it.
When the pinned targets alone exceed `max_loaded` the bound gives way, with a warning, rather
than live traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

from reconciler.gateway.backends.base import Backend
from reconciler.gateway.targets import Target

log = logging.getLogger(__name__)

BackendLoader = Callable[[Target], Awaitable[Backend]]
PinnedTargets = Callable[[], Collection[Target]]


@dataclass
class _Entry:
    backend: Backend
    leases: int = 0
    evicted: bool = False


class ModelCache:
    def __init__(
        self,
        load: BackendLoader,
        *,
        max_loaded: int,
        pinned: PinnedTargets = lambda: (),
    ) -> None:
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self._load = load
        self._pinned = pinned
        self.max_loaded = max_loaded
        self._entries: OrderedDict[Target, _Entry] = OrderedDict()
        self._loading: dict[Target, asyncio.Future[_Entry]] = {}
        self.loads = 0
        self.evictions = 0

    @property
    def loaded(self) -> tuple[Target, ...]:
        return tuple(self._entries)

    async def ensure(self, target: Target) -> None:
        """Load and warm `target` unless it is loaded already (raises the load's error)."""
        async with self.lease(target):
            pass

    @asynccontextmanager
    async def lease(self, target: Target) -> AsyncIterator[Backend]:
        entry = await self._acquire(target)
        try:
            yield entry.backend
        finally:
            entry.leases -= 1
            if entry.evicted and entry.leases == 0:
                await self._close(entry)

    async def trim(self) -> None:
        """Evict unpinned targets beyond the bound (after the pins changed)."""
        await self._evict_over_bound()

    async def close(self) -> None:
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            await self._close(entry)

    async def _acquire(self, target: Target) -> _Entry:
        """The loaded entry of `target` with a lease taken, loading it when needed."""
        while True:
            entry = self._entries.get(target)
            if entry is not None:
                self._entries.move_to_end(target)
            else:
                pending = self._loading.get(target)
                if pending is None:
                    return await self._load_leased(target)
                entry = await asyncio.shield(pending)
            # A shared load may have been evicted (and closed) by another load before this
            # waiter resumed: never hand that out, load it again instead.
            if not entry.evicted:
                entry.leases += 1
                return entry

    async def _load_leased(self, target: Target) -> _Entry:
        pending: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._loading[target] = pending
        try:
            backend = await self._load(target)
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved here, so a load nobody else awaited is quiet
            raise
        finally:
            del self._loading[target]
        # Leased before anything else is evicted: the squeeze below may pick this very entry
        # (when everything else is pinned) and must then wait for this request to finish.
        entry = _Entry(backend, leases=1)
        self.loads += 1
        self._entries[target] = entry
        pending.set_result(entry)
        await self._evict_over_bound()
        return entry

    async def _evict_over_bound(self) -> None:
        while len(self._entries) > self.max_loaded:
            pinned = set(self._pinned())
            victim = next((t for t in self._entries if t not in pinned), None)
            if victim is None:
                log.warning(
                    "%d model versions are loaded, more than the bound of %d, because live "
                    "routes name every one of them; raise --max-loaded-models",
                    len(self._entries),
                    self.max_loaded,
                )
                return
            entry = self._entries.pop(victim)
            self.evictions += 1
            entry.evicted = True
            log.info("evicting %s from the model cache", victim)
            if entry.leases == 0:
                await self._close(entry)

    @staticmethod
    async def _close(entry: _Entry) -> None:
        try:
            await entry.backend.close()
        except Exception:  # a failing close must not fail the request that triggered it
            log.exception("closing %s failed", entry.backend.description.target)
