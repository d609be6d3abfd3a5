"""The control plane's HTTP API (FastAPI): reads for anyone who can reach the port, writes
for holders of the API token (`auth.py`). Thin: each handler validates, calls `reads` or
`break_glass`, and maps errors to statuses. The OpenAPI document is at /openapi.json.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from reconciler import __version__
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.plan.render import render_json, render_markdown
from reconciler.redaction import redact_text
from reconciler.rollout.state import Control
from reconciler.server import break_glass, reads
from reconciler.server.auth import TOKEN_ENV, writer_check
from reconciler.server.metrics import CONTENT_TYPE, ControlPlaneMetrics
from reconciler.server.reads import UnknownUseCaseError
from reconciler.server.runtime import DesiredStateInvalidError, ServeRuntime

UseCaseName = Annotated[
    str,
    Path(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Use case."),
]
Wait = Annotated[
    float,
    Query(ge=0, le=600, description="Seconds to wait for the reconcile cycle to finish."),
]


class PlanFormat(StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"


class CycleQueued(BaseModel):
    cycle: int = Field(description="The reconcile cycle that includes this request.")
    done: bool = Field(description="Whether that cycle finished within `wait`.")
    report: dict[str, Any] | None = Field(
        default=None,
        description="When done: the report of the last finished cycle (this one or a later one).",
    )


class RollbackRequest(BaseModel):
    to: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,10}$",
        description="The version to restore; default: the `previous` alias.",
    )


class BreakGlassResponse(BaseModel):
    action: str
    use_case: str
    done: bool = Field(description="Acted; false: asked, the rollout obeys at its next step.")
    outcome: str
    recorded: str = Field(description="Where it is recorded: a pull request, or history.")
    pull_request: str | None = None
    cycle: int | None = None
    rollout: dict[str, Any] | None = None
    dropped: bool = Field(
        default=False,
        description="A control dropped unobeyed: its rollout ended first (why: outcome).",
    )


def create_app(runtime: ServeRuntime, metrics: ControlPlaneMetrics) -> FastAPI:
    app = FastAPI(
        title="model-reconciler control plane",
        version=__version__,
        description="Status, plans, history and break-glass operations of the reconciler.",
    )
    _errors(app)
    _reads(app, runtime, metrics)
    _writes(app, runtime, writer_check(runtime.token))
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(UnknownUseCaseError)
    def _unknown(request: Request, exc: UnknownUseCaseError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(DesiredStateInvalidError)
    def _invalid(request: Request, exc: DesiredStateInvalidError) -> JSONResponse:
        shown = [d.render() for d in exc.diagnostics[:50]]
        return JSONResponse(
            {"detail": f"{exc}; fix the desired state in git", "diagnostics": shown},
            status_code=503,
        )

    @app.exception_handler(ReconcilerError)
    def _failed(request: Request, exc: ReconcilerError) -> JSONResponse:
        status = 503 if isinstance(exc, TemporaryError) else 409
        return JSONResponse({"detail": redact_text(str(exc))}, status_code=status)


def _reads(app: FastAPI, runtime: ServeRuntime, metrics: ControlPlaneMetrics) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/api/v1/status", tags=["read"])
    def status() -> dict[str, Any]:
        """Sync and health of every use case, and what the controller did last."""
        return reads.status(runtime)

    @app.get("/api/v1/use-cases/{name}", tags=["read"])
    def use_case(name: UseCaseName) -> dict[str, Any]:
        """One use case: status, rollout progress, pending control, last judgements, plan."""
        return reads.use_case(runtime, name)

    @app.get("/api/v1/use-cases/{name}/history", tags=["read"])
    def history(name: UseCaseName) -> dict[str, Any]:
        """Champion changes, every rollout analysis, and operators' API actions."""
        return reads.history(runtime, name)

    @app.get(
        "/api/v1/plan",
        tags=["read"],
        responses={200: {"content": {"application/json": {}, "text/markdown": {}}}},
    )
    def plan(
        request: Request,
        format: Annotated[
            PlanFormat | None,
            Query(description="json or markdown; default from Accept (text/markdown), else json"),
        ] = None,
    ) -> Response:
        """The plan the controller would apply now."""
        wanted = format or (
            PlanFormat.MARKDOWN
            if "text/markdown" in request.headers.get("accept", "")
            else PlanFormat.JSON
        )
        made = reads.plan(runtime)
        if wanted is PlanFormat.MARKDOWN:
            return Response(render_markdown(made), media_type="text/markdown; charset=utf-8")
        return Response(render_json(made), media_type="application/json")

    @app.get("/api/v1/use-cases/{name}/guardrails", tags=["read"])
    def guardrails(name: UseCaseName) -> dict[str, Any]:
        """The guardrail violations recorded for the use case, by severity, category, version."""
        return reads.guardrails(runtime, name)

    @app.get("/api/v1/discovery", tags=["read"])
    def discovery(
        use_case: Annotated[
            list[str] | None, Query(description="Only these use cases (repeatable).")
        ] = None,
    ) -> dict[str, Any]:
        """Ranked candidates for the use cases with `spec.discovery`, with their reasons."""
        return reads.discovery(runtime, use_case or [])


def _writes(app: FastAPI, runtime: ServeRuntime, check: Any) -> None:
    guarded: dict[str, Any] = {
        "dependencies": [Depends(check)],
        "responses": {
            401: {"description": "No token, or a wrong one."},
            403: {"description": f"Writes are disabled: {TOKEN_ENV} is not set on the server."},
        },
    }
    waited = {
        **guarded,
        "responses": {
            **guarded["responses"],
            202: {
                "description": "Asked; "
                "not finished within `wait` (the rollout obeys at its next step)."
            },
        },
    }
    controlled = {
        **waited,
        "responses": {
            **waited["responses"],
            409: {
                "description": "Dropped unobeyed: the rollout ended first (the answer says "
                "why), or no rollout runs for it to act on.",
            },
        },
    }

    @app.post("/api/v1/reconcile", tags=["write"], response_model=CycleQueued, **waited)
    def reconcile(response: Response, wait: Wait = 0) -> CycleQueued:
        """Run a reconcile cycle now - after the running one, never beside it."""
        controller = runtime.controller
        if controller is None:
            raise HTTPException(503, "the controller is not running")
        cycle = controller.reconcile_now()
        finished = controller.wait_for_cycle(cycle, wait) if wait > 0 else None
        response.status_code = 200 if finished is not None else 202
        report = reads.cycle_view(finished[1], finished[0]) if finished else None
        return CycleQueued(cycle=cycle, done=finished is not None, report=report)

    @app.post(
        "/api/v1/use-cases/{name}/rollback",
        tags=["break-glass"],
        response_model=BreakGlassResponse,
        **guarded,
    )
    def rollback(
        name: UseCaseName, request: Request, body: RollbackRequest | None = None
    ) -> BreakGlassResponse:
        """Restore the previous champion (or `to`) with all traffic, now; recorded in git."""
        result = break_glass.rollback(
            runtime, name, body.to if body else None, client=_client(request)
        )
        return BreakGlassResponse(**result.as_json())

    for control, summary in (
        (Control.PAUSE, "Pause the rollout at its current step"),
        (Control.RESUME, "Resume a paused rollout"),
        (Control.ABORT, "Abort the rollout and roll back to the champion"),
        (Control.PROMOTE, "Skip the remaining steps and promote the challenger"),
    ):
        app.post(
            f"/api/v1/use-cases/{{name}}/{control.value}",
            tags=["break-glass"],
            response_model=BreakGlassResponse,
            summary=summary,
            name=control.value,
            **controlled,
        )(_control_endpoint(runtime, control))


def _control_endpoint(runtime: ServeRuntime, control: Control) -> Any:
    def endpoint(
        name: UseCaseName, request: Request, response: Response, wait: Wait = 30
    ) -> BreakGlassResponse:
        result = break_glass.control(runtime, name, control, wait=wait, client=_client(request))
        response.status_code = 409 if result.dropped else 200 if result.done else 202
        return BreakGlassResponse(**result.as_json())

    return endpoint


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None
