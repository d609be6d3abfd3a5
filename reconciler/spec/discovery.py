"""`spec.discovery` and `spec.rejected`: where to look for better models, and what not to retry.

Discovery is written per use case, like Renovate's per-package rules: the sources to scan, the
soak time (`minimumReleaseAge`), the schedule the controller and the workflow honour, the
ranking weights and how proposals become pull requests. `rejected` is written back by
`reconciler propose` after an automatic rollback, so git stays the source of truth and the
planner never retries a rejected candidate.

Neither section changes what is asked of the models, so neither is part of the use case's
evaluation digest (see `identity.py`): turning discovery on re-opens no evaluation.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from reconciler.spec.base import (
    Duration,
    EnvVarName,
    NestedFieldError,
    RepoPath,
    SpecModel,
    reject_secret,
    require_unique,
)

HUB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
HTTP_URL_PATTERN = r"^https?://\S+$"


class HuggingFaceSource(SpecModel):
    """Models on the Hugging Face Hub (or the mirror HF_ENDPOINT names)."""

    author: str | None = Field(default=None, pattern=HUB_NAME_PATTERN, max_length=96)
    search: str | None = Field(default=None, min_length=1, max_length=200)
    pipeline_tag: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$", max_length=64)
    min_downloads: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=1000, description="Most models to look at.")


class OpenAICompatibleSource(SpecModel):
    """An OpenAI-compatible provider's `GET /models` (OpenRouter's extra fields are read)."""

    base_url: str | None = Field(default=None, pattern=HTTP_URL_PATTERN)
    base_url_env: EnvVarName | None = None
    api_key_env: EnvVarName | None = None
    license: str = Field(
        default="proprietary",
        min_length=1,
        description="License of the provider's models (its /models does not say).",
    )
    match: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Only model ids containing this text (case-insensitive).",
    )

    @field_validator("api_key_env", "base_url_env", mode="before")
    @classmethod
    def _not_a_secret(cls, value: object) -> object:
        return reject_secret(value)

    @model_validator(mode="after")
    def _has_endpoint(self) -> OpenAICompatibleSource:
        if self.base_url is None and self.base_url_env is None:
            raise ValueError("give baseUrl, baseUrlEnv, or both")
        return self


class OllamaSource(SpecModel):
    """A running Ollama (`GET /api/tags`, `POST /api/show`)."""

    base_url: str = Field(default="http://127.0.0.1:11434", pattern=HTTP_URL_PATTERN)
    base_url_env: EnvVarName | None = None
    license: str | None = Field(
        default=None, min_length=1, description="Used when a model's card names no license."
    )


class LocalCatalogSource(SpecModel):
    """A folder of Hugging Face-format model folders (a `config.json` in each)."""

    path: RepoPath


class DiscoverySource(SpecModel):
    """Exactly one source kind per entry: `{huggingface: {...}}`, `{local: {...}}`, ..."""

    huggingface: HuggingFaceSource | None = None
    openai_compatible: OpenAICompatibleSource | None = None
    ollama: OllamaSource | None = None
    local: LocalCatalogSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DiscoverySource:
        given = [
            name
            for name, value in (
                ("huggingface", self.huggingface),
                ("openaiCompatible", self.openai_compatible),
                ("ollama", self.ollama),
                ("local", self.local),
            )
            if value is not None
        ]
        if len(given) != 1:
            shown = ", ".join(given) if given else "none"
            raise ValueError(
                "each source names exactly one of huggingface, openaiCompatible, ollama, "
                f"local; got {shown}"
            )
        return self

    @property
    def kind(self) -> str:
        for name in ("huggingface", "openai_compatible", "ollama", "local"):
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated: exactly one source kind")


class RankingWeights(SpecModel):
    """How much each criterion counts; normalised by their sum."""

    quality: float = Field(default=0.3, ge=0.0, le=100.0)
    resource_efficiency: float = Field(default=0.2, ge=0.0, le=100.0)
    size: float = Field(default=0.1, ge=0.0, le=100.0)
    community_health: float = Field(default=0.15, ge=0.0, le=100.0)
    recency: float = Field(default=0.15, ge=0.0, le=100.0)
    license: float = Field(default=0.1, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _some_weight(self) -> RankingWeights:
        if sum(self.as_dict().values()) <= 0:
            raise ValueError("at least one weight must be above 0")
        return self

    def as_dict(self) -> dict[str, float]:
        """Criterion name (as written in YAML) -> weight."""
        return {str(k): float(v) for k, v in self.model_dump(by_alias=True).items()}


class Proposals(SpecModel):
    """How upgrades become pull requests (Renovate's prConcurrentLimit, grouping, labels)."""

    limit: int = Field(default=5, ge=0, le=100, description="Open proposal PRs at most.")
    group: bool = Field(default=False, description="One PR for every use case's upgrade.")
    labels: list[str] = Field(default_factory=lambda: ["model-upgrade"], max_length=20)

    @field_validator("labels")
    @classmethod
    def _plain_labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not 1 <= len(label) <= 50 or any(c in label for c in ",\n\r\t"):
                raise ValueError(
                    f"label {label[:60]!r} must be 1-50 characters without commas or line breaks"
                )
        require_unique(labels, "labels")
        return labels


class Discovery(SpecModel):
    sources: list[DiscoverySource] = Field(min_length=1, max_length=20)
    minimum_release_age: Duration | None = Field(
        default=None, description="Soak: a candidate younger than this is not proposed yet."
    )
    schedule: str | None = Field(
        default=None,
        max_length=100,
        description="Cron (5 fields, UTC) for the controller and the workflow; `propose` run "
        "by hand ignores it.",
    )
    weights: RankingWeights = Field(default_factory=RankingWeights)
    proposals: Proposals = Field(default_factory=Proposals)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str | None) -> str | None:
        if schedule is None:
            return None
        if len(schedule.split()) != 5:
            raise ValueError(
                f"{schedule!r} is not a cron schedule of 5 fields (minute hour day month weekday)"
            )
        try:
            cron_trigger(schedule)
        except ValueError as exc:
            raise ValueError(f"{schedule!r} is not a valid cron schedule: {exc}") from None
        return schedule


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(schedule: str) -> Any:
    """An apscheduler trigger for a standard 5-field cron line, in UTC.

    Standard cron counts weekdays from Sunday (0 or 7); apscheduler 3 from Monday. Numbers in
    the weekday field are written as names first, so `0 6 * * 1` means Monday, as in crontab.
    """
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, weekday = schedule.split()
    weekday = re.sub(r"(?<![*/])\b([0-7])\b", lambda m: _WEEKDAYS[int(m.group(1)) % 7], weekday)
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=weekday, timezone="UTC"
    )


class RejectedCandidate(SpecModel):
    """A version rolled back automatically; the planner never retries its key."""

    key: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="The version's key tag.")
    version: str | None = Field(default=None, pattern=r"^[0-9]+$", max_length=20)
    reason: str = Field(min_length=1, max_length=1000)
    at: datetime
    model: str | None = Field(
        default=None, max_length=400, description="What the version was built from, for people."
    )


def check_rejected(rejected: list[RejectedCandidate]) -> None:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(rejected):
        if entry.key in seen:
            problems.append(((i, "key"), f"key listed twice (also at rejected[{seen[entry.key]}])"))
        seen.setdefault(entry.key, i)
    if problems:
        raise NestedFieldError(problems)
