"""The model cache: LRU bound, shared loads, and no backend closed under a request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

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

    async def start(self) -> None:
        self.events.append(f"start {self.description.target}")

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        return GenerationResult(text=request.prompt or "", prompt_tokens=1, completion_tokens=1)

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [await self.generate(r) for r in requests]

    async def close(self) -> None:
        self.events.append(f"close {self.description.target}")


def _cache(events: list[str], max_loaded: int, fail: set[Target] | None = None) -> ModelCache:
    async def load(target: Target) -> RecordingBackend:
        await asyncio.sleep(0.01)
        if fail and target in fail:
            raise RuntimeError(f"cannot load {target}")
        backend = RecordingBackend(target, events)
        await backend.start()
        return backend

    return ModelCache(load, max_loaded=max_loaded)


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
