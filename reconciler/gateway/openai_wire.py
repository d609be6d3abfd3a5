"""The OpenAI wire format the gateway speaks: request bodies, response bodies, error bodies.

Only what the gateway honours is modelled; unknown fields are accepted and ignored, as the
OpenAI API itself does with fields a model does not support, so the official clients work
unchanged. A request the gateway cannot honour faithfully (several choices, images) is
refused with a 400 rather than silently answered differently.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.gateway.backends.base import ChatMessage, GenerationResult
from reconciler.redaction import has_surrogates

M = TypeVar("M", bound=BaseModel)


class ErrorType(enum.StrEnum):
    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    UPSTREAM = "upstream_error"
    UNAVAILABLE = "service_unavailable"
    SERVER = "server_error"


class GatewayError(Exception):
    """An error with its HTTP status and an OpenAI-style body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: ErrorType = ErrorType.INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code or type.value
        self.param = param
        # Set once the failure is already counted per version, so it is not counted twice.
        self.counted = False

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type.value,
                "param": self.param,
                "code": self.code,
            }
        }


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextPart(_WireModel):
    type: Literal["text"]
    text: str


class WireMessage(_WireModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def plain(self) -> ChatMessage:
        if isinstance(self.content, list):
            text = "".join(part.text for part in self.content)
        else:
            text = self.content or ""
        return ChatMessage(role="system" if self.role == "developer" else self.role, content=text)


Temperature = Annotated[float | None, Field(default=None, ge=0.0, le=2.0)]
TopP = Annotated[float | None, Field(default=None, gt=0.0, le=1.0)]
MaxTokens = Annotated[int | None, Field(default=None, ge=1)]


class SamplingFields(_WireModel):
    model: str = Field(min_length=1, max_length=256)
    temperature: Temperature = None
    top_p: TopP = None
    max_tokens: MaxTokens = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request.")
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)

    @property
    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(SamplingFields):
    messages: list[WireMessage] = Field(min_length=1)
    max_completion_tokens: MaxTokens = None

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingFields):
    prompt: str | list[str]

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class FeedbackRequest(_WireModel):
    id: str = Field(min_length=1, max_length=128, description="The response id to rate.")
    index: int | None = Field(
        default=None, ge=0, le=10_000, description="The choice to rate, as in `choices[].index`."
    )
    rating: float | None = Field(default=None, ge=0.0, le=1.0)
    corrected_output: str | None = Field(default=None, max_length=100_000)


class RouteEntry(_WireModel):
    version: str = Field(min_length=1, max_length=64)
    weight: int = Field(ge=0, le=100)
    shadow: bool = False


NESTED_TOO_DEEPLY = "the request body nests arrays or objects too deeply to be a request"
INVALID_UNICODE_CODE = "invalid_unicode"


def parse_json(raw: bytes) -> Any:
    """`raw` as JSON holding only text that can be stored, or a 400 that says what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        # The parser recurses once per `[` or `{`; no request the API defines nests this deep.
        raise GatewayError(400, NESTED_TOO_DEEPLY) from exc
    if _SURROGATE_ESCAPE.search(raw):  # the only way one gets in: UTF-8 cannot carry it
        _refuse_lone_surrogates(data)
    return data


# A JSON escape of a surrogate code point, paired or not (`\\ud83d\\ude00` is an emoji).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(data: Any) -> None:
    """400 naming the first field whose text holds a lone UTF-16 surrogate.

    JSON's `\\ud800` escape decodes to a code point that is no character: no tokenizer,
    UTF-8 encoder or SQLite column accepts it, so such a request can be neither answered nor
    logged. Walked with an explicit stack, as deep as json.loads allowed, without recursion.
    """
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if has_surrogates(value):
                where = ".".join(path) or "body"
                raise GatewayError(
                    400,
                    f"invalid request: the text at {where} is not valid Unicode (it holds a lone "
                    "UTF-16 surrogate such as \\ud800)",
                    code=INVALID_UNICODE_CODE,
                    param=where,
                )
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if has_surrogates(key):
                    where = ".".join(path) or "body"
                    raise GatewayError(
                        400,
                        f"invalid request: a key in {where} is not valid Unicode (it holds a "
                        "lone UTF-16 surrogate)",
                        code=INVALID_UNICODE_CODE,
                        param=where,
                    )
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, str(i)), item) for i, item in reversed(list(enumerate(value))))


def parse_body(raw: bytes, model: type[M]) -> M:
    """`raw` JSON validated as `model`, or a 400 that names the offending field."""
    data = parse_json(raw)
    try:
        return model.model_validate(data)
    except RecursionError as exc:
        raise GatewayError(400, NESTED_TOO_DEEPLY) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"] + (f" (at {where})" if where else "")
        raise GatewayError(400, f"invalid request: {message}", param=where) from exc


def usage_of(results: list[GenerationResult]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_completion_body(
    *,
    id: str,
    created: int,
    use_case: str,
    version: str,
    text: str,
    finish: str,
    result: GenerationResult,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": use_case,
        "model_version": version,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": usage_of([result]),
    }


def chat_chunks(
    *, id: str, created: int, use_case: str, version: str, text: str, finish: str
) -> list[dict[str, Any]]:
    """The streamed form of a finished answer: the whole text is inspected before any of it
    leaves the gateway, so it goes out as one content chunk and one closing chunk."""
    base = {"id": id, "object": "chat.completion.chunk", "created": created, "model": use_case}
    return [
        {
            **base,
            "model_version": version,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": text},
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "model_version": version,
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
        },
    ]


def completion_body(
    *,
    id: str,
    created: int,
    use_case: str,
    version: str,
    texts: list[tuple[str, str]],
    results: list[GenerationResult],
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": use_case,
        "model_version": version,
        "choices": [
            {"index": i, "text": text, "finish_reason": finish, "logprobs": None}
            for i, (text, finish) in enumerate(texts)
        ],
        "usage": usage_of(results),
    }
