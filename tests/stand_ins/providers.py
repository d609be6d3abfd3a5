"""Stand-ins for model providers: an OpenAI-compatible API with OpenRouter's `/models` fields,
and Ollama (`/api/tags`, `/api/show`, and its OpenAI-compatible `/v1/chat/completions`).

Chat completions answer with a function of the request body, so a test decides what a
candidate "says"; every request (with its Authorization header) is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.stand_ins.http import Request, Response, Served, json_response, serve

Answer = Callable[[dict[str, Any]], str]


def openrouter_model(
    model_id: str,
    *,
    created: int = 1_764_000_000,
    prompt: str = "0.0000005",
    completion: str = "0.0000015",
    context_length: int = 32768,
    expiration_date: str | None = None,
) -> dict[str, Any]:
    return {
        "id": model_id,
        "canonical_slug": model_id,
        "name": model_id,
        "created": created,
        "description": "stand-in",
        "context_length": context_length,
        "architecture": {"modality": "text->text", "input_modalities": ["text"]},
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0"},
        "top_provider": {"context_length": context_length, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": ["temperature", "top_p", "max_tokens"],
        "expiration_date": expiration_date,
    }


def _chat(request: Request, answer: Answer, usage: bool = True) -> Response:
    body = request.json()
    text = answer(body)
    reported = {
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": len(text.split()),
            "total_tokens": 3 + len(text.split()),
        }
    }
    return json_response(
        {
            "id": "chatcmpl-stand-in",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            **(reported if usage else {}),
        }
    )


@contextmanager
def serve_openai_compatible(
    models: list[dict[str, Any]],
    *,
    answer: Answer = lambda body: "The road north is safe today.",
    api_key: str | None = None,
    usage: bool = True,
) -> Iterator[Served]:
    """`GET /v1/models` and `POST /v1/chat/completions` (with `usage` token counts unless
    `usage=False`, as some providers do); 401 without the key when one is set."""

    def handle(request: Request) -> Response:
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return json_response({"error": {"message": "invalid api key"}}, status=401)
        if request.method == "GET" and request.path == "/v1/models":
            return json_response({"object": "list", "data": models})
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return _chat(request, answer, usage)
        return Response(404)

    with serve(handle) as served:
        yield served


def ollama_model(
    name: str,
    *,
    digest: str = "a" * 64,
    parameter_size: str = "135M",
    quantization: str = "Q8_0",
    modified_at: str = "2026-10-03T23:34:03.409490317-07:00",
) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": modified_at,
        "size": 145_000_000,
        "digest": digest,
        "details": {
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": parameter_size,
            "quantization_level": quantization,
        },
    }


APACHE_TEXT = (
    "                                 Apache License\n"
    "                           Version 2.0, January 2004\n"
)


@contextmanager
def serve_ollama(
    models: list[dict[str, Any]],
    *,
    licenses: dict[str, str] | None = None,
    parameter_counts: dict[str, int] | None = None,
    answer: Answer = lambda body: "Well met, traveller.",
) -> Iterator[Served]:
    def handle(request: Request) -> Response:
        if request.method == "GET" and request.path == "/api/tags":
            return json_response({"models": models})
        if request.method == "POST" and request.path == "/api/show":
            name = request.json()["model"]
            listed = next((m for m in models if m["name"] == name), None)
            if listed is None:
                return json_response({"error": f"model '{name}' not found"}, status=404)
            info: dict[str, Any] = {"general.architecture": "llama"}
            if parameter_counts and name in parameter_counts:
                info["general.parameter_count"] = parameter_counts[name]
            return json_response(
                {
                    "license": (licenses or {}).get(name, ""),
                    "modelfile": "# stand-in",
                    "parameters": "temperature 0.7",
                    "template": "{{ .Prompt }}",
                    "details": listed["details"],
                    "model_info": info,
                    "capabilities": ["completion"],
                    "modified_at": listed["modified_at"],
                }
            )
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return _chat(request, answer)
        return Response(404)

    with serve(handle) as served:
        yield served
