"""Loaded backends, at most `max_loaded` at a time, least recently used evicted first.

A backend is lent out for the length of one request (`lease`). Evicting one that is still
lent only takes it out of the cache; it is closed when the last lease returns, so a route
change or a cache squeeze never fails a request in flight. Concurrent requests for a target
that is not loaded share one load.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from reconciler.gateway.backends.base import Backend
from reconciler.gateway.targets import Target

log = logging.getLogger(__name__)

BackendLoader = Callable[[Target], Awaitable[Backend]]


@dataclass
class _Entry:
    backend: Backend
    leases: int = 0
    evicted: bool = False


class ModelCache:
    def __init__(self, load: BackendLoader, *, max_loaded: int) -> None:
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self._load = load
        self.max_loaded = max_loaded
        self._entries: OrderedDict[Target, _Entry] = OrderedDict()
        self._loading: dict[Target, asyncio.Future[_Entry]] = {}
        self.loads = 0
        self.evictions = 0

    @property
    def loaded(self) -> tuple[Target, ...]:
        return tuple(self._entries)

    def is_loaded(self, target: Target) -> bool:
        return target in self._entries

    async def ensure(self, target: Target) -> None:
        """Load and warm `target` unless it is loaded already (raises the load's error)."""
        await self._entry(target)

    @asynccontextmanager
    async def lease(self, target: Target) -> AsyncIterator[Backend]:
        entry = await self._entry(target)
        entry.leases += 1
        try:
            yield entry.backend
        finally:
            entry.leases -= 1
            if entry.evicted and entry.leases == 0:
                await self._close(entry)

    async def close(self) -> None:
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            await self._close(entry)

    async def _entry(self, target: Target) -> _Entry:
        entry = self._entries.get(target)
        if entry is not None:
            self._entries.move_to_end(target)
            return entry
        pending = self._loading.get(target)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
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
            entry = _Entry(backend)
            self.loads += 1
            self._entries[target] = entry
            pending.set_result(entry)
            await self._evict_over_bound()
            return entry
        return await asyncio.shield(pending)

    async def _evict_over_bound(self) -> None:
        while len(self._entries) > self.max_loaded:
            target, entry = self._entries.popitem(last=False)
            self.evictions += 1
            entry.evicted = True
            log.info("evicting %s from the model cache", target)
            if entry.leases == 0:
                await self._close(entry)

    @staticmethod
    async def _close(entry: _Entry) -> None:
        try:
            await entry.backend.close()
        except Exception:  # a failing close must not fail the request that triggered it
            log.exception("closing %s failed", entry.backend.description.target)
