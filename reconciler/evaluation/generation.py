"""Generating outputs for many prompts at once: local weights in batches, providers concurrently.

Local models generate a whole batch per `generate` call (left padding), never one prompt at a
time, and prompts of like length are batched together. The sampler is seeded per repeat, so
the candidate and champion draw the same random numbers: when they behave alike their outputs
match, and a model compared with itself scores exactly 1. A prompt's latency is the wall time
of the batch it was generated in, which is what a caller of a batching server would wait.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.evaluation.result import TokenUsage
from reconciler.prompt_format import render_prompt, turn_stops
from reconciler.redaction import redact_uri, url_secrets
from reconciler.spec.model import Generation

DEFAULT_BATCH_SIZE = 32
EXTERNAL_CONCURRENCY = 16
# A provider's 429 or 5xx, or a dropped connection, is retried with exponential backoff (a
# 429's Retry-After honoured) before the evaluation gives up - as the gateway retries for
# players. Then the evaluation is incomplete, not failed: it is tried again later.
PROVIDER_ATTEMPTS = 4
PROVIDER_BACKOFF_SECONDS = 0.5
PROVIDER_BACKOFF_MAX_SECONDS = 30.0
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class GenerationError(ReconcilerError):
    """Outputs could not be generated (model unloadable, provider refusing the request)."""


class ProviderUnavailableError(GenerationError, TemporaryError):
    """The provider kept failing (429, 5xx, unreachable): worth trying again later."""


class _RetryableCallError(Exception):
    def __init__(self, summary: str, retry_after: float | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), PROVIDER_BACKOFF_MAX_SECONDS) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to the exponential wait


@dataclass(frozen=True)
class Generated:
    text: str
    latency_ms: float
    new_tokens: int
    usage: TokenUsage | None = None  # what a provider reported (its `usage`), if it did


class Generator(Protocol):
    def generate(self, prompts: Sequence[str], *, seed: int) -> list[Generated]: ...


class LocalGenerator:
    """A transformers causal LM; prompts are user turns framed by `render_prompt`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        generation: Generation,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.generation = generation
        self.batch_size = batch_size
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.eval()

    def generate(self, prompts: Sequence[str], *, seed: int) -> list[Generated]:
        import torch

        if not prompts:
            return []
        torch.manual_seed(seed)
        texts = [render_prompt(self.tokenizer, self.generation.system_prompt, p) for p in prompts]
        # Batched by length, longest first: a batch is padded to its longest prompt, so
        # prompts of like length together waste the least; results go back in prompt order.
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
        results: list[Generated | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            for index, generated in zip(
                chosen, self._batch([texts[i] for i in chosen]), strict=True
            ):
                results[index] = generated
        return [g for g in results if g is not None]

    def _batch(self, texts: list[str]) -> list[Generated]:
        import torch

        tokenizer, model, settings = self.tokenizer, self.model, self.generation
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        limit = getattr(model.config, "n_positions", None) or getattr(
            model.config, "max_position_embeddings", None
        )
        max_new = settings.max_new_tokens
        if limit is not None:
            width = int(encoded["input_ids"].shape[1])
            if width >= int(limit):
                keep = int(limit) - 1
                encoded = {k: v[:, -keep:] for k, v in encoded.items()}
            max_new = max(1, min(max_new, int(limit) - int(encoded["input_ids"].shape[1])))
        options: dict[str, Any] = {
            "max_new_tokens": max_new,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if settings.temperature > 0:
            options |= {
                "do_sample": True,
                "temperature": settings.temperature,
                "top_p": settings.top_p,
            }
        else:
            options["do_sample"] = False
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**encoded, **options)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        width = encoded["input_ids"].shape[1]
        results = []
        for row in output:
            new_tokens = row[width:].tolist()
            eos = tokenizer.eos_token_id
            if eos is not None and eos in new_tokens:
                new_tokens = new_tokens[: new_tokens.index(eos)]
            text = tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
            for stop in [*settings.stop, *turn_stops(tokenizer)]:
                text = text.split(stop, 1)[0].strip()
            results.append(Generated(text, elapsed_ms, len(new_tokens)))
        return results


class ExternalGenerator:
    """An OpenAI-compatible provider: all prompts in flight at once (bounded), via httpx."""

    def __init__(
        self,
        *,
        model_id: str,
        base_url: str,
        api_key: str | None,
        generation: Generation,
        timeout_seconds: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.model_id = model_id
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.generation = generation
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep  # the waits between retries; a test records them instead

    @classmethod
    def from_provider(cls, provider: dict[str, Any], generation: Generation) -> ExternalGenerator:
        """Base URL from the named environment variable when set, else the spec's URL."""
        env_name = provider.get("base_url_env")
        base_url = (os.environ.get(env_name) if env_name else None) or provider.get("base_url")
        if not base_url:
            raise GenerationError(
                f"no base URL for {provider.get('id')}: set {env_name} or baseUrl"
            )
        secrets = url_secrets(str(base_url))
        if secrets:
            # Never sent (httpx would turn user:password into Basic credentials), never shown.
            raise GenerationError(
                f"the base URL of {provider.get('id')} holds {', '.join(secrets)}: keep "
                "credentials in the variable apiKeyEnv names"
            )
        key_name = provider.get("api_key_env")
        api_key = os.environ.get(key_name) if key_name else None
        if key_name and not api_key:
            raise GenerationError(f"environment variable {key_name} (the API key) is not set")
        return cls(
            model_id=str(provider["id"]),
            base_url=str(base_url),
            api_key=api_key,
            generation=generation,
        )

    def generate(self, prompts: Sequence[str], *, seed: int) -> list[Generated]:
        return asyncio.run(self._all(prompts, seed))

    async def _call(self, client: Any, body: dict[str, Any]) -> dict[str, Any]:
        """One request; a failure worth retrying raises `_RetryableCallError` with a one-line
        summary (status and reason, never the provider's body, which may echo secrets)."""
        import httpx

        where = redact_uri(self.base_url)
        try:
            response = await client.post("chat/completions", json=body)
        except httpx.TransportError as exc:
            raise _RetryableCallError(f"{type(exc).__name__} reaching {where}") from None
        if response.status_code in _RETRYABLE_STATUS:
            raise _RetryableCallError(
                f"HTTP {response.status_code} {response.reason_phrase} from {where}",
                _retry_after(response.headers.get("retry-after")),
            )
        if response.status_code >= 400:
            raise GenerationError(
                f"provider for {self.model_id} refused the request: HTTP "
                f"{response.status_code} {response.reason_phrase} from {where}"
            )
        try:
            payload: dict[str, Any] = response.json()
            payload["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            summary = f"an answer that is not a chat completion from {where}"
            raise _RetryableCallError(summary) from None
        return payload

    async def _all(self, prompts: Sequence[str], seed: int) -> list[Generated]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        gate = asyncio.Semaphore(EXTERNAL_CONCURRENCY)
        async with httpx.AsyncClient(
            base_url=self.base_url + "/", headers=headers, timeout=self.timeout_seconds
        ) as client:

            async def one(prompt: str) -> Generated:
                async with gate:
                    return await self._one(client, prompt, seed)

            return list(await asyncio.gather(*(one(p) for p in prompts)))

    async def _one(self, client: Any, prompt: str, seed: int) -> Generated:
        settings = self.generation
        messages = (
            [{"role": "system", "content": settings.system_prompt}]
            if (settings.system_prompt)
            else []
        )
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [*messages, {"role": "user", "content": prompt}],
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_new_tokens,
            "seed": seed,
        }
        if settings.stop:
            body["stop"] = settings.stop
        import tenacity

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            hinted = error.retry_after if isinstance(error, _RetryableCallError) else None
            exponential = PROVIDER_BACKOFF_SECONDS * 2 ** (state.attempt_number - 1)
            return min(hinted or exponential, PROVIDER_BACKOFF_MAX_SECONDS)

        try:
            async for attempt in tenacity.AsyncRetrying(
                stop=tenacity.stop_after_attempt(PROVIDER_ATTEMPTS),
                wait=wait,
                retry=tenacity.retry_if_exception_type(_RetryableCallError),
                reraise=True,
                sleep=self.sleep,
            ):
                with attempt:
                    started = time.perf_counter()
                    payload = await self._call(client, body)
        except _RetryableCallError as exc:
            raise ProviderUnavailableError(
                f"provider for {self.model_id} failed {PROVIDER_ATTEMPTS} times: {exc.summary}"
            ) from None
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        text = str(payload["choices"][0]["message"].get("content") or "")
        usage = payload.get("usage") or {}
        tokens = int(usage.get("completion_tokens") or len(text.split()))
        return Generated(text, elapsed_ms, tokens, _reported_usage(usage))


def _reported_usage(usage: Any) -> TokenUsage | None:
    """The provider's token counts, when it sent both as numbers."""
    if not isinstance(usage, dict):
        return None
    prompt = _token_count(usage.get("prompt_tokens"))
    completion = _token_count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    return TokenUsage(prompt, completion)


def _token_count(value: object) -> float | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
