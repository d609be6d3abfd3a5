"""The model cache: LRU bound, pinned live targets, shared loads, and no backend closed under a
request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence

import pytest

from reconciler.gateway.backends.base import GenerationRequest, GenerationResult
from reconciler.gateway.model_cache import ModelCache
from reconciler.gateway.targets import Target, TargetDescription, TargetKind


class RecordingBackend:
    """A backend that echoes and records its life cycle (tests only)."""

    def __init__(self, target: Target, events: list[str]) -> None:
        self.description = TargetDescription(
            target, TargetKind.EXTERNAL, target.use_case, f"models:/{target.use_case}/1"
        )
        self.events = events
        self.closed = False

    async def start(self) -> None:
        self.events.append(f"start {self.description.target}")

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.closed:
            raise RuntimeError(f"{self.description.target} was closed")
        return GenerationResult(text=request.prompt or "", prompt_tokens=1, completion_tokens=1)

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [await self.generate(r) for r in requests]

    async def close(self) -> None:
        self.closed = True
        self.events.append(f"close {self.description.target}")


def _cache(
    events: list[str],
    max_loaded: int,
    fail: set[Target] | None = None,
    pinned: Collection[Target] = (),
) -> ModelCache:
    async def load(target: Target) -> RecordingBackend:
        await asyncio.sleep(0.01)
        if fail and target in fail:
            raise RuntimeError(f"cannot load {target}")
        backend = RecordingBackend(target, events)
        await backend.start()
        return backend

    return ModelCache(load, max_loaded=max_loaded, pinned=lambda: pinned)


A, B, C = Target("npc", "1"), Target("npc", "2"), Target("npc", "3")


def test_the_least_recently_used_is_evicted() -> None:
    async def scenario() -> tuple[ModelCache, list[str]]:
        events: list[str] = []
        cache = _cache(events, max_loaded=2)
        await cache.ensure(A)
        await cache.ensure(B)
        await cache.ensure(A)  # A is now the most recent
        await cache.ensure(C)
        return cache, events

    cache, events = asyncio.run(scenario())
    assert cache.loaded == (A, C)
    assert events == ["start npc@1", "start npc@2", "start npc@3", "close npc@2"]


def test_a_leased_backend_is_closed_only_after_its_request() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        cache = _cache(events, max_loaded=1)
        async with cache.lease(A) as backend:
            await cache.ensure(B)  # evicts A while it is lent out
            assert "close npc@1" not in events
            await backend.generate(GenerationRequest(prompt="still works"))
        return events

    assert asyncio.run(scenario())[-1] == "close npc@1"


def test_concurrent_requests_share_one_load_and_failures_are_retried() -> None:
    async def scenario() -> tuple[list[str], ModelCache]:
        events: list[str] = []
        cache = _cache(events, max_loaded=3, fail={C})
        await asyncio.gather(*(cache.ensure(A) for _ in range(10)))
        for _ in range(2):
            with pytest.raises(RuntimeError, match="cannot load"):
                await cache.ensure(C)
        return events, cache

    events, cache = asyncio.run(scenario())
    assert events == ["start npc@1"]
    assert cache.loaded == (A,)


def test_pinned_targets_are_never_evicted(caplog: pytest.LogCaptureFixture) -> None:
    pinned = {A, B}

    async def scenario() -> tuple[ModelCache, list[str], tuple[Target, ...]]:
        events: list[str] = []
        cache = _cache(events, max_loaded=1, pinned=pinned)
        await cache.ensure(A)
        await cache.ensure(B)  # over the bound, but both are live: neither goes
        await cache.ensure(C)  # not live: the only one that may go, so it goes
        during = cache.loaded
        pinned.discard(B)  # B's routes were replaced
        await cache.trim()
        return cache, events, during

    with caplog.at_level(logging.WARNING, logger="reconciler.gateway.model_cache"):
        cache, events, during = asyncio.run(scenario())
    assert during == (A, B)
    assert cache.loaded == (A,)
    assert events == ["start npc@1", "start npc@2", "start npc@3", "close npc@3", "close npc@2"]
    assert "more than the bound of 1" in caplog.text


def test_a_shared_load_evicted_before_its_waiter_resumes_is_loaded_again() -> None:
    async def scenario() -> tuple[str, list[str]]:
        events: list[str] = []
        gates = {A: asyncio.Event(), C: asyncio.Event()}

        async def load(target: Target) -> RecordingBackend:
            await gates[target].wait()
            backend = RecordingBackend(target, events)
            await backend.start()
            return backend

        cache = ModelCache(load, max_loaded=1)

        async def request() -> str:
            async with cache.lease(A) as backend:
                return (await backend.generate(GenerationRequest(prompt="served"))).text

        warm_a = asyncio.create_task(cache.ensure(A))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(request())  # shares A's load
        warm_c = asyncio.create_task(cache.ensure(C))
        await asyncio.sleep(0)
        # Both loads finish together: C's squeezes A out before the waiter of A resumes.
        gates[A].set()
        gates[C].set()
        await asyncio.gather(warm_a, warm_c)
        return await waiting, events

    text, events = asyncio.run(scenario())
    assert text == "served"
    assert events.count("start npc@1") == 2  # loaded again rather than handed out closed
