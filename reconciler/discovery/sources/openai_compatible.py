"""An OpenAI-compatible provider's model list: `GET {baseUrl}/models` through httpx.

Plain OpenAI-compatible servers answer `{"data": [{"id", "created", "owned_by"}]}`; OpenRouter
adds `pricing` (US dollars per token, as decimal strings; "-1" for a router whose price is not
fixed), `context_length`, `expiration_date` and `hugging_face_id`, which are read when present.
The API key is read from the environment variable the spec names and sent as a bearer token;
it appears nowhere else, not even in the skip line when the provider refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from reconciler.discovery.candidate import Candidate, Pricing, SourceKind
from reconciler.discovery.retries import RetryPolicy, request_with_retries
from reconciler.discovery.sources import SourceUnavailableError
from reconciler.settings import redact_uri
from reconciler.spec.discovery import OpenAICompatibleSource


class OpenAICompatibleModels:
    def __init__(
        self, config: OpenAICompatibleSource, *, environ: Mapping[str, str], policy: RetryPolicy
    ) -> None:
        self.config = config
        self.environ = environ
        self.policy = policy

    @property
    def base_url(self) -> str | None:
        from_env = self.environ.get(self.config.base_url_env) if self.config.base_url_env else None
        return (from_env or self.config.base_url or "").rstrip("/") or None

    @property
    def description(self) -> str:
        where = self.base_url or f"${self.config.base_url_env}"
        return f"openaiCompatible ({redact_uri(where)})"

    def candidates(self) -> list[Candidate]:
        base = self.base_url
        if base is None:
            raise SourceUnavailableError(
                f"{self.config.base_url_env} is not set and no baseUrl is given"
            )
        headers = {"Accept": "application/json"}
        key_name = self.config.api_key_env
        key = self.environ.get(key_name) if key_name else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        what = f"{redact_uri(base)}/models"
        with httpx.Client(timeout=self.policy.timeout, follow_redirects=False) as client:
            response = request_with_retries(
                client, "GET", f"{base}/models", policy=self.policy, what=what, headers=headers
            )
        if response.status_code in (401, 403):
            hint = f"; check {key_name}" if key_name else ""
            raise SourceUnavailableError(f"{what}: refused (HTTP {response.status_code}){hint}")
        if response.status_code != 200:
            raise SourceUnavailableError(f"{what}: HTTP {response.status_code}")
        try:
            data = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            raise SourceUnavailableError(f"{what}: not an OpenAI-compatible model list") from None
        if not isinstance(data, list):
            raise SourceUnavailableError(f"{what}: not an OpenAI-compatible model list")
        wanted = (self.config.match or "").lower()
        return [
            _candidate(entry, self.config, base)
            for entry in data
            if isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and wanted in entry["id"].lower()
        ]


def _candidate(entry: dict[str, Any], config: OpenAICompatibleSource, base: str) -> Candidate:
    return Candidate(
        source=SourceKind.OPENAI_COMPATIBLE,
        id=entry["id"],
        license=config.license,
        released_at=_timestamp(entry.get("created")),
        pricing=_pricing(entry.get("pricing")),
        context_length=_int(entry.get("context_length")),
        expires_at=_date(entry.get("expiration_date")),
        base_url=config.base_url or (None if config.base_url_env else base),
        base_url_env=config.base_url_env,
        api_key_env=config.api_key_env,
    )


def _price(value: Any) -> float | None:
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if price >= 0 else None  # "-1": a router's price is not fixed


def _pricing(value: Any) -> Pricing | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = _price(value.get("prompt")), _price(value.get("completion"))
    if prompt is None or completion is None:
        return None
    return Pricing(prompt, completion, _price(value.get("request")) or 0.0)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
