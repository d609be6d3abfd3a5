"""The HTTP face of the gateway: OpenAI-compatible endpoints, feedback, health, errors.

Handlers read the raw body and validate it themselves so that every client mistake becomes
an OpenAI-style 4xx body (FastAPI's own 422 shape would confuse OpenAI clients), and a last
handler turns anything unexpected into an OpenAI-style 500 rather than an HTML page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.gateway.admin_api import admin_router
from reconciler.gateway.calls import chat_call, completion_call
from reconciler.gateway.openai_wire import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorType,
    FeedbackRequest,
    GatewayError,
    chat_chunks,
    chat_completion_body,
    completion_body,
    parse_body,
)
from reconciler.gateway.openapi import install_openapi
from reconciler.gateway.request_body import read_body
from reconciler.gateway.request_log import Feedback, FeedbackTargetError
from reconciler.gateway.service import Gateway, Served

log = logging.getLogger(__name__)

VERSION_HEADER = "x-model-version"
SESSION_HEADER = "x-session-id"


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _body(request: Request) -> bytes:
    return await read_body(request, gateway_of(request).config.max_body_bytes)


def _use_case(request: Request, name: str) -> None:
    # Only a known name becomes a metrics label: a client's inventions must not grow /metrics.
    if not gateway_of(request).knows(name):
        known = ", ".join(gateway_of(request).watcher.known_use_cases()) or "none"
        raise GatewayError(
            404,
            f"the model {name!r} does not exist: `model` names a use case ({known})",
            type=ErrorType.INVALID_REQUEST,
            code="model_not_found",
            param="model",
        )
    request.state.use_case = name


def _session(request: Request, user: str | None) -> str | None:
    return request.headers.get(SESSION_HEADER) or user


def create_app(gateway: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title="reconciler gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gateway
    install_openapi(app, gateway.watcher.known_use_cases)
    _install_error_handlers(app)
    app.include_router(admin_router)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        wire = parse_body(await _body(request), ChatCompletionRequest)
        _use_case(request, wire.model)
        call = chat_call(
            gateway.catalog.profile(wire.model),
            wire,
            session_id=_session(request, wire.user),
            config=gateway.config,
        )
        served = await gateway.serve(call)
        output = served.outputs[0]
        fields: dict[str, Any] = {
            "id": served.id,
            "created": served.created,
            "use_case": wire.model,
            "version": served.version,
            "text": output.text,
            "finish": output.finish_reason,
        }
        headers = {VERSION_HEADER: served.version}
        if wire.stream:
            return StreamingResponse(
                _sse(chat_chunks(**fields)), media_type="text/event-stream", headers=headers
            )
        return JSONResponse(chat_completion_body(**fields, result=output.result), headers=headers)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        wire = parse_body(await _body(request), CompletionRequest)
        _use_case(request, wire.model)
        call = completion_call(
            gateway.catalog.profile(wire.model),
            wire,
            session_id=_session(request, wire.user),
            config=gateway.config,
        )
        served: Served = await gateway.serve(call)
        body = completion_body(
            id=served.id,
            created=served.created,
            use_case=wire.model,
            version=served.version,
            texts=[(o.text, o.finish_reason) for o in served.outputs],
            results=[o.result for o in served.outputs],
        )
        return JSONResponse(body, headers={VERSION_HEADER: served.version})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "reconciler"}
                for name in gateway.watcher.known_use_cases()
            ],
        }

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        """Rate or correct a response by the `id` it was answered with.

        Body: `{"id", "rating"?, "corrected_output"?, "index"?}`. `index` is the choice's
        `choices[].index`; a /v1/completions call with a list of prompts has one choice per
        prompt under one id. Without `index` a rating applies to every choice of the
        response; a corrected_output is the text for one prompt, so a response with several
        choices needs `index` for it (400 otherwise). Answers how many outputs it went to.
        """
        wire = parse_body(await _body(request), FeedbackRequest)
        if wire.rating is None and wire.corrected_output is None:
            raise GatewayError(400, "give a rating, a corrected_output, or both", param="rating")
        job = gateway.request_log.feedback_job(
            Feedback(wire.id, wire.rating, wire.corrected_output, wire.index)
        )
        try:
            outputs = await gateway.log_job(job)
        except FeedbackTargetError as exc:
            raise GatewayError(400, str(exc), param="index") from exc
        if not outputs:
            raise GatewayError(
                404, f"no logged response has the id {wire.id!r}", code="response_not_found"
            )
        return {"id": wire.id, "stored": True, "outputs": outputs}

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 while the gateway can serve and log; 503 when the request-log writer has
        stopped or is stuck (nothing would be logged: no training data, no canary analysis)."""
        watcher = gateway.watcher
        writer = gateway.request_log.health()
        body = {
            "status": "ok" if writer.healthy else "unhealthy",
            "request_log": writer.as_json(),
            # "pushed": route changes arrive by NOTIFY (a shared store); else only polled.
            "route_changes": "pushed" if watcher.listening else "polled",
            "use_cases": {
                name: {
                    "generation": plan.generation,
                    "routes": [r.as_json() for r in (*plan.live, *plan.shadows)],
                    "pending": _pending(gateway, name),
                }
                for name, plan in sorted(watcher.plans.items())
            },
            "loaded_models": [str(t) for t in gateway.cache.loaded],
        }
        return JSONResponse(body, status_code=200 if writer.healthy else 503)

    return app


def _pending(gateway: Gateway, use_case: str) -> dict[str, Any] | None:
    pending = gateway.watcher.pending.get(use_case)
    if pending is None:
        return None
    return {"generation": pending.generation, "reason": pending.reason}


async def _sse(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        if not exc.counted:
            use_case = getattr(request.state, "use_case", "")
            gateway_of(request).metrics.count_rejection(
                use_case=use_case, status=exc.status, code=exc.code
            )
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = ErrorType.NOT_FOUND if exc.status_code == 404 else ErrorType.INVALID_REQUEST
        error = GatewayError(exc.status_code, str(exc.detail), type=error_type)
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = GatewayError(400, f"invalid request: {exc.errors()[0].get('msg', exc)}")
        return JSONResponse(error.body(), status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected failure serving %s %s", request.method, request.url.path)
        error = GatewayError(
            500, f"internal gateway error ({type(exc).__name__})", type=ErrorType.SERVER
        )
        return JSONResponse(error.body(), status_code=500)
