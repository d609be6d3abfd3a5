"""End to end with real weights: a tiny GPT-2 registered in a real MLflow sqlite store (once
through `mlflow.transformers.log_model`, once as a plain Hugging Face folder), served by the
gateway process through transformers, and answered to the official OpenAI client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import openai
import pytest

from reconciler.gateway.backends.base import (
    ContextLengthError,
    EmptyPromptError,
    GenerationRequest,
    GenerationResult,
)
from reconciler.gateway.backends.self_hosted import SelfHostedBackend
from reconciler.gateway.catalog import SamplingSettings
from reconciler.gateway.targets import Target, TargetDescription, TargetKind
from reconciler.registry.version_files import locate_model_folders
from tests.gateway.processes import RunningGateway
from tests.gateway.tiny_model import build_tiny_gpt2

# Far beyond the tiny model's 128 positions, far below the gateway's 32 000 characters.
TOO_LONG = "Tell me everything about the dragons of the far north and their gold. " * 12


def test_a_tiny_transformers_model_is_served_from_mlflow(
    gateway: RunningGateway, tiny_versions: tuple[str, str]
) -> None:
    logged, plain = tiny_versions
    gateway.set_routes(
        "tiny-npc", [{"version": logged, "weight": 50}, {"version": plain, "weight": 50}]
    )
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    served = set()
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(
            model="tiny-npc",
            messages=[{"role": "user", "content": "Where can I buy a sword?"}],
        )
        completion = raw.parse()
        served.add(raw.headers["x-model-version"])
        assert isinstance(completion.choices[0].message.content, str)
        assert completion.usage is not None
        assert completion.usage.prompt_tokens > 5
        assert 1 <= completion.usage.completion_tokens <= 6  # the use case's maxNewTokens
    assert served == {logged, plain}

    batch = client.completions.create(model="tiny-npc", prompt=["The inn", "The well"])
    assert [c.index for c in batch.choices] == [0, 1]

    cache = gateway.world.state_dir / "model-cache" / "tiny-npc"
    via_log_model = locate_model_folders(cache / logged)
    assert via_log_model.tokenizer != via_log_model.weights  # components/tokenizer
    via_folder = locate_model_folders(cache / plain)
    assert via_folder.tokenizer == via_folder.weights
    assert Path(via_folder.weights, "config.json").exists()


def test_a_prompt_too_long_for_the_model_is_the_callers_400(
    gateway: RunningGateway, tiny_versions: tuple[str, str]
) -> None:
    logged, _ = tiny_versions
    gateway.set_routes("tiny-npc", [{"version": logged, "weight": 100}])
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    since = time.time()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny-npc", messages=[{"role": "user", "content": TOO_LONG}]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "maximum context length is 128 tokens" in error["message"]
    with pytest.raises(openai.BadRequestError, match="context length") as batch:
        client.completions.create(model="tiny-npc", prompt=["The inn", TOO_LONG])
    assert isinstance(batch.value.body, dict) and batch.value.body["param"] == "prompt"
    answered = client.chat.completions.create(
        model="tiny-npc", messages=[{"role": "user", "content": "Hello"}]
    )
    assert answered.choices[0].message.content is not None

    window = httpx.get(
        f"{gateway.url}/admin/metrics",
        params={"use_case": "tiny-npc", "since": since},
        timeout=30,
    ).json()["versions"][logged]
    # Only the answered request is the version's: the refused ones are no errors of it.
    assert (window["requests"], window["errors"]) == (1, 0)
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=30).text
    assert 'kind="context_length_exceeded"' not in metrics
    assert (
        'gateway_rejected_requests_total{use_case="tiny-npc",status="400",'
        'code="context_length_exceeded"} 2' in metrics
    )


def test_a_prompt_too_long_fails_alone_in_its_batch(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    folder = build_tiny_gpt2(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    near_limit = "The inn"
    while len(tokenizer(near_limit)["input_ids"]) < 124:  # room for fewer than 6 tokens
        near_limit += " The inn"
    sampling = SamplingSettings(temperature=0.0, max_new_tokens=6)
    target = Target("tiny", "1")
    backend = SelfHostedBackend(
        TargetDescription(target, TargetKind.SELF_HOSTED, "tiny", "models:/tiny/1"),
        lambda: locate_model_folders(folder),
    )

    def request(prompt: str) -> GenerationRequest:
        return GenerationRequest(prompt=prompt, sampling=sampling)

    async def scenario() -> tuple[GenerationResult, list[GenerationResult | BaseException]]:
        await backend.start()
        try:
            alone = await backend.generate(request("Welcome to"))
            # Queued together, so the worker takes all three as one batch.
            together = await asyncio.gather(
                backend.generate(request("Welcome to")),
                backend.generate(request(TOO_LONG)),
                backend.generate(request(near_limit)),
                backend.generate(request("")),
                return_exceptions=True,
            )
            return alone, list(together)
        finally:
            await backend.close()

    alone, (short, too_long, near, empty) = asyncio.run(scenario())
    assert short == alone  # neither failed nor cut short by the others in its batch
    assert isinstance(too_long, ContextLengthError)
    assert isinstance(empty, EmptyPromptError)  # the caller's mistake, not the model's
    assert isinstance(near, GenerationResult)
    assert near.prompt_tokens + near.completion_tokens <= 128
