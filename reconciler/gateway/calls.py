"""Turning an OpenAI request into what the gateway serves: the use case's settings applied.

The use case decides the system prompt and the sampling defaults; a request may lower the
output length (never raise it above the use case's maxNewTokens) and set its own temperature,
top_p and stop sequences. Limits are checked here, before any routing, so an oversized,
empty or malformed request is a 4xx that never reaches a model or the version metrics.
"""

from __future__ import annotations

from typing import Any

from reconciler.gateway.backends.base import ChatMessage, GenerationRequest
from reconciler.gateway.catalog import SamplingSettings, UseCaseProfile
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.openai_wire import (
    ChatCompletionRequest,
    CompletionRequest,
    GatewayError,
    SamplingFields,
)
from reconciler.gateway.service import Endpoint, ServingCall

MAX_PROMPTS = 32


def _sampling(
    profile: UseCaseProfile, wire: SamplingFields, output_limit: int | None, config: GatewayConfig
) -> SamplingSettings:
    if output_limit is not None and output_limit > config.max_new_tokens_limit:
        raise GatewayError(
            400,
            f"max_tokens {output_limit} exceeds this gateway's limit of "
            f"{config.max_new_tokens_limit}",
            param="max_tokens",
        )
    stop = wire.stop_list
    if len(stop) > 8:
        raise GatewayError(400, "at most 8 stop sequences are supported", param="stop")
    if wire.stream and not isinstance(wire, ChatCompletionRequest):
        raise GatewayError(400, "streaming is supported for chat completions only", param="stream")
    return profile.sampling.overridden(
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_new_tokens=output_limit,
        stop=stop,
    )


def _check_length(chars: int, config: GatewayConfig, *, param: str) -> None:
    if chars > config.max_prompt_chars:
        raise GatewayError(
            400,
            f"the prompt is {chars} characters long; this gateway accepts at most "
            f"{config.max_prompt_chars}",
            code="context_length_exceeded",
            param=param,
        )


def _logged(sampling: SamplingSettings, **content: Any) -> dict[str, Any]:
    return {
        **content,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_new_tokens": sampling.max_new_tokens,
        "stop": list(sampling.stop),
    }


def chat_call(
    profile: UseCaseProfile,
    wire: ChatCompletionRequest,
    *,
    session_id: str | None,
    config: GatewayConfig,
) -> ServingCall:
    sampling = _sampling(profile, wire, wire.output_limit, config)
    messages = tuple(m.plain() for m in wire.messages)
    if profile.system_prompt:
        # The use case's persona comes first; a caller's own system message refines it.
        messages = (ChatMessage("system", profile.system_prompt), *messages)
    _check_length(sum(len(m.content) for m in messages), config, param="messages")
    logged = _logged(sampling, messages=[{"role": m.role, "content": m.content} for m in messages])
    return ServingCall(
        use_case=profile.name,
        endpoint=Endpoint.CHAT,
        requests=(GenerationRequest(messages=messages, sampling=sampling),),
        logged_request=logged,
        session_id=session_id,
    )


def completion_call(
    profile: UseCaseProfile,
    wire: CompletionRequest,
    *,
    session_id: str | None,
    config: GatewayConfig,
) -> ServingCall:
    sampling = _sampling(profile, wire, wire.max_tokens, config)
    prompts = wire.prompts
    if not 1 <= len(prompts) <= MAX_PROMPTS:
        raise GatewayError(400, f"give 1 to {MAX_PROMPTS} prompts", param="prompt")
    for index, prompt in enumerate(prompts):
        if not prompt:
            # A model continues text; from nothing it has nothing to continue.
            where = "prompt" if isinstance(wire.prompt, str) else f"prompt.{index}"
            raise GatewayError(
                400,
                f"{where} is empty; send the text to continue",
                code="empty_prompt",
                param=where,
            )
    _check_length(max(len(p) for p in prompts), config, param="prompt")
    return ServingCall(
        use_case=profile.name,
        endpoint=Endpoint.COMPLETION,
        requests=tuple(GenerationRequest(prompt=p, sampling=sampling) for p in prompts),
        logged_request=_logged(sampling, prompt=prompts[0] if len(prompts) == 1 else prompts),
        session_id=session_id,
    )
