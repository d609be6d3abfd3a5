"""The interface every backend implements, and the values that cross it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.gateway.catalog import SamplingSettings
from reconciler.gateway.targets import TargetDescription
from reconciler.redaction import redact_text

_FAILURE_CHARS = 300


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
EMPTY_PROMPT_CODE = "empty_prompt"


class RequestRejectedError(BackendError):
    """The caller's request is at fault, not the version: the gateway answers 400 with
    `code` and never counts it against the version that canary analysis judges."""

    code = "invalid_request"


class ContextLengthError(RequestRejectedError):
    """The prompt does not fit the model's context (`context_length_exceeded`, OpenAI's code)."""

    code = CONTEXT_LENGTH_CODE


class EmptyPromptError(RequestRejectedError):
    """The prompt is nothing to continue from (no tokens at all)."""

    code = EMPTY_PROMPT_CODE


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
    """One line about `exc` fit for an error body: its type and first line, redacted."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {redact_text(lines[0])[:_FAILURE_CHARS]}"
