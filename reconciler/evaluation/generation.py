"""Generating outputs for many prompts at once: local weights in batches, providers concurrently.

Local models generate a whole batch per `generate` call (left padding), never one prompt at a
time. The sampler is seeded per repeat, so the candidate and champion draw the same random
numbers: when they behave alike their outputs match, and a model compared with itself scores
exactly 1. A prompt's latency is the wall time of the batch it was generated in, which is what
a caller of a batching server would wait.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.errors import ReconcilerError
from reconciler.prompt_format import render_prompt, turn_stops
from reconciler.spec.model import Generation

DEFAULT_BATCH_SIZE = 32
EXTERNAL_CONCURRENCY = 16


class GenerationError(ReconcilerError):
    """Outputs could not be generated (model unloadable, provider unreachable)."""


@dataclass(frozen=True)
class Generated:
    text: str
    latency_ms: float
    new_tokens: int


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

        torch.manual_seed(seed)
        texts = [render_prompt(self.tokenizer, self.generation.system_prompt, p) for p in prompts]
        results: list[Generated] = []
        for start in range(0, len(texts), self.batch_size):
            results += self._batch(texts[start : start + self.batch_size])
        return results

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
    ) -> None:
        self.model_id = model_id
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.generation = generation
        self.timeout_seconds = timeout_seconds

    @classmethod
    def from_provider(cls, provider: dict[str, Any], generation: Generation) -> ExternalGenerator:
        """Base URL from the named environment variable when set, else the spec's URL."""
        env_name = provider.get("base_url_env")
        base_url = (os.environ.get(env_name) if env_name else None) or provider.get("base_url")
        if not base_url:
            raise GenerationError(
                f"no base URL for {provider.get('id')}: set {env_name} or baseUrl"
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
        started = time.perf_counter()
        try:
            response = await client.post("chat/completions", json=body)
            response.raise_for_status()
            payload = response.json()
        except Exception as exc:
            raise GenerationError(
                f"provider call for {self.model_id} failed: {type(exc).__name__}: {exc}"
            ) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        text = str(payload["choices"][0]["message"].get("content") or "")
        usage = payload.get("usage") or {}
        tokens = int(usage.get("completion_tokens") or len(text.split()))
        return Generated(text, elapsed_ms, tokens)
