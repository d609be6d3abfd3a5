"""What a source says about one model it offers: a plain, frozen value.

Every field but the identity (`source`, `id`) may be unknown; unknown is `None`, never a guess,
so eligibility can say "parameter count unknown" instead of pretending it fits. Text in a
candidate came from outside (a Hub, a provider): it is data to show and check, never to run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class SourceKind(enum.StrEnum):
    HUGGINGFACE = "huggingface"
    OPENAI_COMPATIBLE = "openai-compatible"
    OLLAMA = "ollama"
    LOCAL = "local"


@dataclass(frozen=True)
class Pricing:
    """Provider prices in US dollars (OpenRouter sends them as decimal strings)."""

    prompt_per_token: float
    completion_per_token: float
    per_request: float = 0.0

    def cost_per_request(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (
            prompt_tokens * self.prompt_per_token
            + completion_tokens * self.completion_per_token
            + self.per_request
        )


@dataclass(frozen=True)
class Candidate:
    source: SourceKind
    id: str  # Hub repo id, provider model name, Ollama model name, or catalog folder
    revision: str | None = None  # Hub commit sha, Ollama digest, catalog content digest
    license: str | None = None
    parameters: float | None = None
    bytes_per_parameter: float | None = None  # from the weights' dtype, when known
    pipeline_tag: str | None = None
    downloads: int | None = None
    likes: int | None = None
    released_at: datetime | None = None  # last change of what would be pinned
    gated: bool = False
    quality: float | None = None  # a benchmark figure in [0, 1] the source reports
    pricing: Pricing | None = None
    context_length: int | None = None
    expires_at: datetime | None = None
    # Where the model is reached, in the terms the acceptable-model entry needs.
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    path: str | None = None  # repository-relative folder of a local catalog model
    min_downloads: int = 0  # the source's own minimum, checked with the other constraints

    @property
    def label(self) -> str:
        shown = f"{self.source.value}:{self.id}"
        return f"{shown}@{self.revision[:12]}" if self.revision else shown

    @property
    def identity(self) -> tuple[str, str, str | None]:
        """What makes two candidates the same proposal: source, id and pinned revision."""
        return (self.source.value, self.id, self.revision)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "id": self.id,
            "revision": self.revision,
            "license": self.license,
            "parameters": self.parameters,
            "released_at": self.released_at.isoformat() if self.released_at else None,
            "pipeline_tag": self.pipeline_tag,
            "downloads": self.downloads,
            "likes": self.likes,
            "gated": self.gated,
            "context_length": self.context_length,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "pricing": None
            if self.pricing is None
            else {
                "prompt": self.pricing.prompt_per_token,
                "completion": self.pricing.completion_per_token,
                "request": self.pricing.per_request,
            },
        }


@dataclass(frozen=True)
class PassedOver:
    """A model a source lists but could not describe (gated, gone, refused): one line why."""

    id: str
    reason: str

    @property
    def line(self) -> str:
        return f"{self.id}: {self.reason}"


@dataclass(frozen=True)
class SourceReport:
    """What one source returned: candidates, or why it was skipped (one line, no traceback),
    and the models it passed over while the others were still listed."""

    source: str  # e.g. "huggingface (author=acme)"
    candidates: tuple[Candidate, ...] = ()
    skipped: str | None = None
    passed_over: tuple[PassedOver, ...] = ()
