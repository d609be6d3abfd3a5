"""External OpenAI-compatible providers, called over HTTP with httpx.

The provider's base URL comes from the spec (an environment variable may override it) and
the API key from the environment variable the spec names; the key is only ever put in the
Authorization header. A base URL carrying credentials (`user:pass@`, `?api_key=`) is refused:
httpx would send them as Basic credentials in place of the key, and the URL would leak them
wherever it is shown. Connect errors, timeouts, 429 and 5xx are retried with a short
exponential backoff, since a provider blip should not fail a player's request.

What a provider says when it fails never reaches a player or the request log verbatim (a
provider that echoes request headers in its error body would hand out the key): a failure is
summarised as its status, the reason phrase and the provider's error code, redacted.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from reconciler.gateway.backends.base import (
    CONTEXT_LENGTH_CODE,
    BackendError,
    ContextLengthError,
    FinishReason,
    GenerationRequest,
    GenerationResult,
)
from reconciler.gateway.targets import TargetDescription
from reconciler.redaction import redact_text, redact_uri, url_secrets, without_surrogates

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_BACKOFF_SECONDS = 0.1


def provider_endpoint(
    description: TargetDescription, environ: Mapping[str, str] | None = None
) -> tuple[str, str | None]:
    """(base URL, API key) of an external target; raises BackendError when unset."""
    env = os.environ if environ is None else environ
    provider = description.provider
    if provider is None:
        raise BackendError(f"{description.target} has no provider settings")
    base_url = (env.get(provider.base_url_env) if provider.base_url_env else None) or (
        provider.base_url
    )
    if not base_url:
        raise BackendError(
            f"no base URL for {description.target}: set {provider.base_url_env} or baseUrl"
        )
    secrets = url_secrets(base_url)
    if secrets:
        where = (
            f"the variable {provider.base_url_env}"
            if provider.base_url_env and env.get(provider.base_url_env)
            else "baseUrl"
        )
        raise BackendError(
            f"the base URL of {description.target} in {where} ({redact_uri(base_url)}) carries "
            f"{' and '.join(secrets)}; put the key in the variable apiKeyEnv names instead"
        )
    api_key = None
    if provider.api_key_env:
        api_key = env.get(provider.api_key_env)
        if not api_key:
            raise BackendError(
                f"environment variable {provider.api_key_env} (the API key of "
                f"{provider.model_id}) is not set"
            )
    return base_url.rstrip("/"), api_key


class ExternalBackend:
    """One provider model; requests go out concurrently over a pooled connection."""

    def __init__(
        self,
        description: TargetDescription,
        *,
        timeout_seconds: float = 60.0,
        retries: int = 2,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.description = description
        self.retries = retries
        base_url, api_key = provider_endpoint(description, environ)
        assert description.provider is not None  # checked by provider_endpoint
        self.model_id = description.provider.model_id
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def start(self) -> None:
        # Any HTTP answer proves the provider is reachable and opens a pooled connection;
        # not every provider implements /models, so its status does not matter.
        try:
            await self._client.get("models")
        except httpx.HTTPError as exc:
            raise BackendError(
                f"provider of {self.description.target} at {redact_uri(str(self._client.base_url))}"
                f" is unreachable: {_transport_failure(exc)}"
            ) from exc

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.model_id,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if request.is_chat:
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            payload = await self._post("chat/completions", body)
        else:
            body["prompt"] = request.prompt
            payload = await self._post("completions", body)
        return _result_of(payload, chat=request.is_chat)

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return list(await asyncio.gather(*(self.generate(r) for r in requests)))

    async def close(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        cause = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(_BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                response = await self._client.post(path, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                cause = _transport_failure(exc)
                continue
            if response.status_code in _RETRYABLE_STATUS:
                cause = _status_summary(response)
                continue
            if response.is_error:
                if response.status_code == 400 and _error_code(response) == CONTEXT_LENGTH_CODE:
                    # Too long for the provider's model: the caller's mistake, as it would be
                    # calling the provider directly, not a failure of this version.
                    raise ContextLengthError(
                        f"the prompt is longer than the context of the provider's model "
                        f"{self.model_id!r}; shorten the prompt"
                    )
                raise BackendError(f"provider answered {_status_summary(response)}")
            try:
                payload = response.json()
            except ValueError as exc:
                raise BackendError("provider answered with a body that is not JSON") from exc
            if not isinstance(payload, dict):
                raise BackendError("provider answered with JSON that is not an object")
            return payload
        raise BackendError(f"provider failed after {self.retries + 1} attempt(s): {cause}")


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


# A provider's error code or type is shown when it is a short identifier; never its message.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _status_summary(response: httpx.Response) -> str:
    """`HTTP 500 Internal Server Error (server_error)`: what failed, not what was said."""
    summary = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    try:
        error = response.json()["error"]
        label = error.get("code") or error.get("type")
    except (ValueError, KeyError, TypeError, AttributeError):
        label = None
    if isinstance(label, str) and _IDENTIFIER.match(label):
        summary += f" ({redact_text(label)})"
    return summary


def _transport_failure(exc: httpx.HTTPError) -> str:
    """One short, redacted line about a connection failure or timeout."""
    lines = str(exc).strip().splitlines()
    detail = redact_text(lines[0])[:200] if lines else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _result_of(payload: dict[str, Any], *, chat: bool) -> GenerationResult:
    try:
        choice = payload["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        usage = payload.get("usage") or {}
        finish = choice.get("finish_reason") or "stop"
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError(f"provider answered without a usable choice: {exc!r}") from exc
    return GenerationResult(
        # JSON may carry lone surrogates ("\\ud800") that no UTF-8 writer accepts.
        text=without_surrogates(str(text or "")),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=FinishReason.LENGTH if finish == "length" else FinishReason.STOP,
    )
