"""The hook through which guardrails see every output before a caller does.

The gateway knows nothing of policies: it asks an injected `OutputGuard` for decisions and
acts on them (return, replace, or block), records each in the request log and counts
violations per version, which is what canary analysis and the guardrail monitor judge.

Checking is batched the way generation is (`GuardQueue`): outputs that arrive while a batch is
being checked wait for the next one, and the whole waiting set is checked in one call on one
worker thread. An idle gateway checks each output at once; a busy one embeds many outputs per
model call instead of one, which is what keeps inline guardrails affordable under load.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class GuardAction(enum.StrEnum):
    PASS = "pass"
    BLOCK = "block"
    REPLACE = "replace"
    # Generate this output again with conservative sampling (the `adjust_parameters`
    # intervention); the new output is judged again, and blocked if it is no better.
    REGENERATE = "regenerate"


@dataclass(frozen=True)
class GuardDecision:
    action: GuardAction = GuardAction.PASS
    replacement: str | None = None
    violations: tuple[str, ...] = ()

    @property
    def violated(self) -> bool:
        """True when a check fired, even if the output was let through (log-only checks)."""
        return self.action is not GuardAction.PASS or bool(self.violations)


PASSED = GuardDecision()


@runtime_checkable
class OutputGuard(Protocol):
    def inspect_batch(
        self, use_case: str, version: str, texts: Sequence[str]
    ) -> list[GuardDecision]:
        """Decide, per text, what happens to outputs `version` generated for `use_case`."""
        ...


@runtime_checkable
class StagedGuard(Protocol):
    """A guard that runs as a cascade and counts outputs by the last stage they reached."""

    def outputs_by_stage(self) -> Mapping[str, int]: ...


class PassThroughGuard:
    """The default: every output passes unchanged."""

    def inspect_batch(
        self, use_case: str, version: str, texts: Sequence[str]
    ) -> list[GuardDecision]:
        del use_case, version
        return [PASSED for _ in texts]


_Waiting = tuple[str, str, str, "asyncio.Future[GuardDecision]"]


class GuardQueue:
    """Feeds a guard batches of outputs from concurrent requests, off the event loop."""

    def __init__(self, guard: OutputGuard) -> None:
        self.guard = guard
        self._inline = isinstance(guard, PassThroughGuard)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guardrails")
        self._waiting: list[_Waiting] = []
        self._drain: asyncio.Task[None] | None = None

    async def decide(
        self, use_case: str, version: str, texts: Sequence[str]
    ) -> list[GuardDecision]:
        if self._inline:
            return self.guard.inspect_batch(use_case, version, texts)
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        self._waiting += [(use_case, version, t, f) for t, f in zip(texts, futures, strict=True)]
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._check_waiting())
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def _check_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            groups: dict[tuple[str, str], list[_Waiting]] = {}
            for item in batch:
                groups.setdefault((item[0], item[1]), []).append(item)
            for (use_case, version), items in groups.items():
                texts = [text for _, _, text, _ in items]
                try:
                    decisions = await loop.run_in_executor(
                        self._worker, self.guard.inspect_batch, use_case, version, texts
                    )
                except Exception as exc:
                    for *_, future in items:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), decision in zip(items, decisions, strict=True):
                    if not future.done():
                        future.set_result(decision)
