"""Self-hosted model versions: MLflow artifacts loaded with transformers, run on a worker thread.

Generation is CPU/GPU work that would stall every other request if it ran on the event loop,
so each model owns one worker thread. Requests that arrive while the worker is busy are
batched together on its next turn (grouped by sampling settings, left-padded), which raises
throughput under load without adding any wait when the model is idle. torch and transformers
are imported only here, and only when a self-hosted version is first loaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.gateway.backends.base import (
    BackendError,
    ContextLengthError,
    EmptyPromptError,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    failure_text,
    truncate_at_stop,
)
from reconciler.gateway.catalog import SamplingSettings
from reconciler.gateway.targets import TargetDescription
from reconciler.model_loading import load_causal_lm
from reconciler.prompt_format import render_messages, turn_stops
from reconciler.registry.version_files import ModelFolders

MAX_BATCH = 8
_Pending = tuple[GenerationRequest, "asyncio.Future[GenerationResult]"]
_Outcome = GenerationResult | BackendError


class SelfHostedBackend:
    """A transformers causal LM loaded from the folders `fetch()` returns."""

    def __init__(self, description: TargetDescription, fetch: Callable[[], ModelFolders]) -> None:
        self.description = description
        self._fetch = fetch
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"model-{description.target}"
        )
        self._model: Any = None
        self._tokenizer: Any = None
        self._pending: list[_Pending] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._worker, self._load_and_warm)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(
                f"cannot load {self.description.model_uri}: {failure_text(exc)}"
            ) from exc

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        future: asyncio.Future[GenerationResult] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._drain_pending())
        return await future

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        # Every outcome is collected (none left unretrieved); the first failure fails the call.
        outcomes = await asyncio.gather(
            *(self.generate(r) for r in requests), return_exceptions=True
        )
        results = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    async def close(self) -> None:
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._model = None
        self._tokenizer = None

    async def _drain_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            requests = [request for request, _ in batch]
            try:
                results = await loop.run_in_executor(self._worker, self._generate_all, requests)
            except Exception as exc:
                error = exc if isinstance(exc, BackendError) else BackendError(failure_text(exc))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), outcome in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BackendError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    # --- on the worker thread ------------------------------------------------------------

    def _load_and_warm(self) -> None:
        import torch

        folders = self._fetch()
        model, tokenizer = load_causal_lm(folders.weights, folders.tokenizer)
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        self._tokenizer, self._model = tokenizer, model
        with torch.inference_mode():
            [warm] = self._generate_all(
                [GenerationRequest(prompt="warm up", sampling=SamplingSettings(max_new_tokens=1))]
            )
        if isinstance(warm, BackendError):
            raise warm

    def _generate_all(self, requests: list[GenerationRequest]) -> list[_Outcome]:
        """One outcome per request: its result, or the error that is its alone."""
        outcomes: dict[int, _Outcome] = {}
        # A chat answer ends where a new turn would begin; a raw completion runs on.
        groups: dict[tuple[SamplingSettings, bool], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.sampling, request.prompt is None), []).append(index)
        for (sampling, chat), indexes in groups.items():
            texts = [self._prompt_text(requests[i]) for i in indexes]
            generated = self._generate_group(texts, sampling, chat=chat)
            for i, outcome in zip(indexes, generated, strict=True):
                outcomes[i] = outcome
        return [outcomes[i] for i in range(len(requests))]

    def _prompt_text(self, request: GenerationRequest) -> str:
        if request.prompt is not None:
            return request.prompt
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        return render_messages(self._tokenizer, messages)

    def _generate_group(
        self, texts: list[str], sampling: SamplingSettings, *, chat: bool
    ) -> list[_Outcome]:
        """Texts with one sampling, batched where that changes nobody's answer.

        A prompt that leaves no room in the context, or that is empty, fails alone (another
        player's prompt in the same batch must not fail with it). A prompt whose room is
        shorter than `max_new_tokens` is generated alone too: padded into the batch, its short
        room would cut every other answer short.
        """
        tokenizer, model = self._tokenizer, self._model
        if model is None:
            raise BackendError(f"{self.description.target} is not loaded")
        limit = getattr(model.config, "n_positions", None) or getattr(
            model.config, "max_position_embeddings", None
        )
        lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        outcomes: dict[int, _Outcome] = {}
        together: list[int] = []
        for i, length in enumerate(lengths):
            if length == 0:
                # Nothing to continue from: the caller's mistake (generate() would fail on it).
                outcomes[i] = EmptyPromptError("the prompt is empty once tokenized; send text")
            elif limit is None or length + sampling.max_new_tokens <= int(limit):
                together.append(i)
            elif length >= int(limit):
                outcomes[i] = ContextLengthError(
                    f"this model's maximum context length is {limit} tokens, but the prompt "
                    f"is {length} tokens (with the use case's system prompt and chat format); "
                    "shorten the prompt"
                )
            else:
                [outcomes[i]] = self._generate_texts(
                    [texts[i]], sampling, chat=chat, max_new=int(limit) - length
                )
        if together:
            batch = [texts[i] for i in together]
            generated = self._generate_texts(
                batch, sampling, chat=chat, max_new=sampling.max_new_tokens
            )
            outcomes.update(zip(together, generated, strict=True))
        return [outcomes[i] for i in range(len(texts))]

    def _generate_texts(
        self, texts: list[str], sampling: SamplingSettings, *, chat: bool, max_new: int
    ) -> list[GenerationResult]:
        import torch

        tokenizer, model = self._tokenizer, self._model
        encoded = tokenizer(texts, return_tensors="pt", padding=True)
        options: dict[str, Any] = {
            "max_new_tokens": max_new,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if sampling.temperature > 0:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            options["do_sample"] = False
        with torch.inference_mode():
            output = model.generate(**encoded, **options)
        prompt_length = encoded["input_ids"].shape[1]
        results = []
        for row, mask in zip(output, encoded["attention_mask"], strict=True):
            new_tokens = row[prompt_length:].tolist()
            eos = tokenizer.eos_token_id
            ended = eos is not None and eos in new_tokens
            if ended:
                new_tokens = new_tokens[: new_tokens.index(eos)]
            text = tokenizer.decode(new_tokens, skip_special_tokens=True)
            stops = [*sampling.stop, *(turn_stops(tokenizer) if chat else ())]
            text, stopped = truncate_at_stop(text, stops)
            hit_length = not (ended or stopped) and len(new_tokens) >= max_new
            results.append(
                GenerationResult(
                    text=text,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(new_tokens),
                    finish_reason=FinishReason.LENGTH if hit_length else FinishReason.STOP,
                )
            )
        return results
