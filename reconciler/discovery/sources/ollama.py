"""A running Ollama: `GET /api/tags` lists its models, `POST /api/show` tells each one's license
and parameter count.

An Ollama model is reached for evaluation and serving through Ollama's OpenAI-compatible
endpoint (`{baseUrl}/v1`), so a proposal writes it as an `openai-compatible` acceptable model;
its digest is the revision. `/api/show` returns the license as full text: the common ones are
recognised by their heading, others keep the source's `license` setting or stay unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from reconciler.discovery.candidate import Candidate, SourceKind
from reconciler.discovery.memory import (
    bytes_per_parameter_from_quantization,
    parameters_from_label,
)
from reconciler.discovery.retries import RetryPolicy, request_with_retries
from reconciler.discovery.sources import SourceUnavailableError
from reconciler.settings import redact_uri
from reconciler.spec.discovery import OllamaSource

_LICENSE_HEADINGS = (
    (re.compile(r"apache license.{0,40}version 2\.0", re.I | re.S), "apache-2.0"),
    (re.compile(r"^\s*mit license", re.I), "mit"),
    (re.compile(r"llama 3\.1 community license", re.I), "llama3.1"),
    (re.compile(r"llama 3\.2 community license", re.I), "llama3.2"),
    (re.compile(r"llama 3 community license", re.I), "llama3"),
    (re.compile(r"gemma terms of use", re.I), "gemma"),
)
_FRACTION = re.compile(r"(\.\d{6})\d+")


class OllamaModels:
    def __init__(
        self, config: OllamaSource, *, environ: Mapping[str, str], policy: RetryPolicy
    ) -> None:
        self.config = config
        self.environ = environ
        self.policy = policy

    @property
    def base_url(self) -> str:
        from_env = self.environ.get(self.config.base_url_env) if self.config.base_url_env else None
        return (from_env or self.config.base_url).rstrip("/")

    @property
    def description(self) -> str:
        return f"ollama ({redact_uri(self.base_url)})"

    def candidates(self) -> list[Candidate]:
        base = self.base_url
        what = f"ollama at {redact_uri(base)}"
        with httpx.Client(timeout=self.policy.timeout, follow_redirects=False) as client:
            tags = request_with_retries(
                client, "GET", f"{base}/api/tags", policy=self.policy, what=what
            )
            if tags.status_code != 200:
                raise SourceUnavailableError(f"{what}: /api/tags answered HTTP {tags.status_code}")
            models = _list(tags, "models", what)
            found = []
            for model in models:
                name = model.get("name") or model.get("model")
                if not isinstance(name, str) or not name:
                    continue
                shown = request_with_retries(
                    client,
                    "POST",
                    f"{base}/api/show",
                    policy=self.policy,
                    what=what,
                    json={"model": name},
                )
                details = shown.json() if shown.status_code == 200 else {}
                found.append(
                    self._candidate(name, model, details if isinstance(details, dict) else {})
                )
        return found

    def _candidate(self, name: str, listed: dict[str, Any], shown: dict[str, Any]) -> Candidate:
        details = {**(listed.get("details") or {}), **(shown.get("details") or {})}
        info = shown.get("model_info") or {}
        count = info.get("general.parameter_count") if isinstance(info, dict) else None
        parameters = (
            float(count)
            if isinstance(count, int | float) and not isinstance(count, bool)
            else parameters_from_label(details.get("parameter_size"))
        )
        digest = listed.get("digest")
        return Candidate(
            source=SourceKind.OLLAMA,
            id=name,
            revision=digest if isinstance(digest, str) and digest else None,
            license=license_from_text(shown.get("license")) or self.config.license,
            parameters=parameters,
            bytes_per_parameter=bytes_per_parameter_from_quantization(
                details.get("quantization_level")
            ),
            released_at=_when(listed.get("modified_at") or shown.get("modified_at")),
            base_url=f"{self.base_url}/v1",
            base_url_env=None,
        )


def license_from_text(text: Any) -> str | None:
    if isinstance(text, list):
        text = "\n".join(str(t) for t in text)
    if not isinstance(text, str) or not text.strip():
        return None
    for pattern, name in _LICENSE_HEADINGS:
        if pattern.search(text[:400]):
            return name
    return None


def _list(response: httpx.Response, key: str, what: str) -> list[dict[str, Any]]:
    try:
        value = response.json()[key]
    except (ValueError, KeyError, TypeError):
        raise SourceUnavailableError(f"{what}: unexpected answer (no {key!r})") from None
    if not isinstance(value, list):
        raise SourceUnavailableError(f"{what}: unexpected answer ({key!r} is not a list)")
    return [item for item in value if isinstance(item, dict)]


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:  # Ollama writes nanoseconds; Python reads microseconds
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None
