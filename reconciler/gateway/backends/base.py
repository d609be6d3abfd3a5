"""The interface every backend implements, and the values that cross it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.gateway.catalog import SamplingSettings
from reconciler.gateway.targets import TargetDescription


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """A chat (`messages`) or a plain completion (`prompt`), with the sampling to use."""

    messages: tuple[ChatMessage, ...] = ()
    prompt: str | None = None
    sampling: SamplingSettings = field(default_factory=SamplingSettings)

    @property
    def is_chat(self) -> bool:
        return self.prompt is None


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = FinishReason.STOP


class BackendError(Exception):
    """The backend failed to answer; the gateway returns 502 with this message as the cause."""


CONTEXT_LENGTH_CODE = "context_length_exceeded"


class ContextLengthError(BackendError):
    """The prompt does not fit the model's context: the caller's request is at fault, not the
    version, so the gateway answers 400 `context_length_exceeded` (OpenAI's code) and does
    not count it against the version."""


class Backend(Protocol):
    description: TargetDescription

    async def start(self) -> None:
        """Load and warm up, so the first real request pays no loading cost."""
        ...

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def generate_batch(
        self, requests: Sequence[GenerationRequest]
    ) -> list[GenerationResult]: ...

    async def close(self) -> None: ...


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` cut before the first stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def failure_text(exc: BaseException) -> str:
    """One line about `exc` fit for an error body: its type and first line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
