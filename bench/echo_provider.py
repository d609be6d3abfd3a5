"""A stand-in OpenAI-compatible provider that echoes: the external backend of tests and bench.

Run as a script (`python echo_provider.py --port N`), it is a real uvicorn server speaking
the OpenAI chat and completions protocol. It answers instantly, so what a caller measures is
everything in front of it. A user message containing `provider-fail` gets an HTTP 500; the
answer names the model id the caller asked for, so routing can be checked end to end.

Model ids choose a persona, so tests can roll out a bad model for real: an id ending in
`-failing` always gets an HTTP 500, one ending in `-harmful` answers with a line no player
should ever read (what the guardrails exist to stop), one ending in `-leaky` gets an HTTP 401
whose message echoes the request's Authorization header (a careless provider, which callers
must not pass on). A message containing `show-sampling` gets the sampling it was asked with
appended, so callers can see what was sent. `/stats` counts requests, and the Authorization
schemes they came with.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAILURE_MARKER = "provider-fail"
SAMPLING_MARKER = "show-sampling"
FAILING_MODEL_SUFFIX = "-failing"
HARMFUL_MODEL_SUFFIX = "-harmful"
LEAKY_MODEL_SUFFIX = "-leaky"
HARMFUL_LINE = "Nobody would miss you. You should just kill yourself tonight."
_counts = {"requests": 0}


def _count(request: Request) -> None:
    _counts["requests"] += 1
    scheme = request.headers.get("authorization", "none").split(" ", 1)[0].lower()
    _counts[f"authorization_{scheme}"] = _counts.get(f"authorization_{scheme}", 0) + 1


def _leak(request: Request) -> JSONResponse:
    message = f"invalid key in 'Authorization: {request.headers.get('authorization')}'"
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}},
        status_code=401,
    )


def _usage(prompt: str, answer: str) -> dict[str, int]:
    prompt_tokens, completion_tokens = len(prompt.split()), len(answer.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _failure() -> JSONResponse:
    return JSONResponse(
        {"error": {"message": "the provider is failing on purpose", "type": "server_error"}},
        status_code=500,
    )


async def chat(request: Request) -> Response:
    _count(request)
    body: dict[str, Any] = json.loads(await request.body())
    last = body["messages"][-1]["content"]
    model = str(body["model"])
    if model.endswith(LEAKY_MODEL_SUFFIX):
        return _leak(request)
    if FAILURE_MARKER in last or model.endswith(FAILING_MODEL_SUFFIX):
        return _failure()
    answer = HARMFUL_LINE if model.endswith(HARMFUL_MODEL_SUFFIX) else f"echo[{model}]: {last}"
    if SAMPLING_MARKER in last:
        answer += f" (temperature={body.get('temperature')}, top_p={body.get('top_p')})"
    return JSONResponse(
        {
            "id": f"echo-{_counts['requests']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(" ".join(m["content"] for m in body["messages"]), answer),
        }
    )


async def completions(request: Request) -> Response:
    _count(request)
    body: dict[str, Any] = json.loads(await request.body())
    if str(body["model"]).endswith(LEAKY_MODEL_SUFFIX):
        return _leak(request)
    prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
    if FAILURE_MARKER in prompt:
        return _failure()
    answer = f"echo[{body['model']}]: {prompt}"
    return JSONResponse(
        {
            "id": f"echo-{_counts['requests']}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "text": answer, "finish_reason": "stop"}],
            "usage": _usage(prompt, answer),
        }
    )


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "echo", "object": "model"}]})


async def stats(request: Request) -> Response:
    return JSONResponse(_counts)


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models),
        Route("/stats", stats),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
