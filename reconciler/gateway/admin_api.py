"""Operator endpoints: Prometheus metrics, analysis windows, usage, and the route table.

Reads are open (they reveal no prompts, and every error text in them is redacted); writes
need the admin bearer token and a body of at most `max_admin_body_bytes`. A route write goes
to the same SQLite table the reconciler writes, as `Writer.MANUAL`, so the reconciler sees it
as drift; the gateway itself picks it up like any other change, through its watcher.

A `PUT` always leaves the use case served: its live weights must sum to 100. Taking all of a
use case's traffic away is an outage, so it is its own explicit action, `DELETE`.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import TypeAdapter, ValidationError

from reconciler.errors import StateStoreError
from reconciler.gateway.auth import require_admin
from reconciler.gateway.log_queries import usage_by_version, window_metrics
from reconciler.gateway.openai_wire import GatewayError, RouteEntry, parse_json
from reconciler.gateway.request_body import read_body
from reconciler.gateway.service import Gateway
from reconciler.gateway.targets import Target, TargetError
from reconciler.observe.state import Route
from reconciler.redaction import redact_text
from reconciler.traffic.store import Writer, check_routes

admin_router = APIRouter()

_ROUTES = TypeAdapter(list[RouteEntry])
_WAIT_SECONDS = 60.0


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _flushed(gateway: Gateway) -> None:
    """Wait until every record queued so far is in the file, so a window query sees it."""
    await gateway.log_job(lambda db: None)


def _float_param(request: Request, name: str, default: float | None) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise GatewayError(400, f"{name} must be a number (unix seconds)", param=name) from exc
    if not math.isfinite(value):
        # float() accepts "nan" and "inf"; a NaN bound matches no row and reads as "no data".
        raise GatewayError(400, f"{name} must be a finite number (unix seconds)", param=name)
    return value


@admin_router.get("/metrics")
async def prometheus(request: Request) -> PlainTextResponse:
    return PlainTextResponse(
        _gateway(request).metrics.render(), media_type="text/plain; version=0.0.4"
    )


@admin_router.get("/admin/metrics")
async def analysis_window(request: Request) -> dict[str, Any]:
    gateway = _gateway(request)
    use_case = request.query_params.get("use_case")
    if not use_case:
        raise GatewayError(400, "use_case is required", param="use_case")
    since = _float_param(request, "since", None)
    if since is None:
        raise GatewayError(400, "since is required (unix seconds)", param="since")
    until = _float_param(request, "until", None)
    shadow = request.query_params.get("shadow", "false").lower() in ("1", "true", "yes")
    await _flushed(gateway)
    windows = await asyncio.to_thread(
        window_metrics,
        gateway.request_log.database,
        use_case,
        since=since,
        until=until,
        shadow=shadow,
    )
    return {
        "use_case": use_case,
        "since": since,
        "until": until,
        "shadow": shadow,
        "versions": {version: w.as_json() for version, w in windows.items()},
    }


@admin_router.get("/admin/usage")
async def usage(request: Request) -> dict[str, Any]:
    gateway = _gateway(request)
    await _flushed(gateway)
    rows = await asyncio.to_thread(
        usage_by_version, gateway.request_log.database, request.query_params.get("use_case")
    )
    return {"versions": [row.as_json() for row in rows]}


def _routes_view(gateway: Gateway, use_case: str) -> dict[str, Any]:
    plan = gateway.watcher.plan(use_case)
    pending = gateway.watcher.pending.get(use_case)
    return {
        "use_case": use_case,
        "serving_generation": plan.generation if plan else None,
        "routes": [r.as_json() for r in (*plan.live, *plan.shadows)] if plan else [],
        "pending": None
        if pending is None
        else {"generation": pending.generation, "reason": pending.reason},
        # Per version the routes name: can it serve, and if not, the (redacted) cause; and
        # the latest request it failed itself, if any.
        "targets": [
            {**t.as_json(), "last_failure": _last_failure(gateway, use_case, t.version)}
            for t in gateway.watcher.readiness(use_case)
        ],
    }


def _last_failure(gateway: Gateway, use_case: str, version: str) -> dict[str, Any] | None:
    failure = gateway.last_failures.get(Target(use_case, version))
    return failure.as_json() if failure else None


@admin_router.get("/admin/routes")
async def all_routes(request: Request) -> dict[str, Any]:
    gateway = _gateway(request)
    return {"use_cases": [_routes_view(gateway, n) for n in gateway.watcher.known_use_cases()]}


@admin_router.get("/admin/traffic")
async def traffic_table(request: Request) -> dict[str, Any]:
    """The route table as the planner observes it (routes, last-applied routes, generation)
    for the `use_case` query parameters (all use cases in the table when none): what
    `RECONCILER_GATEWAY_URL` lets a plan on a CI runner read."""
    gateway = _gateway(request)
    names = request.query_params.getlist("use_case") or await asyncio.to_thread(
        gateway.store.use_cases
    )
    snapshots = await asyncio.to_thread(gateway.store.snapshot, names)
    return {
        "use_cases": {
            name: {
                "routes": [r.as_json() for r in snapshot.routes],
                "applied": None
                if snapshot.applied is None
                else [r.as_json() for r in snapshot.applied],
                "generation": snapshot.generation,
            }
            for name, snapshot in snapshots.items()
        }
    }


@admin_router.get("/admin/routes/{use_case}")
async def one_route(request: Request, use_case: str) -> dict[str, Any]:
    gateway = _gateway(request)
    if not gateway.knows(use_case):
        raise GatewayError(404, f"unknown use case {use_case!r}", code="use_case_not_found")
    return _routes_view(gateway, use_case)


@admin_router.put("/admin/routes/{use_case}")
async def write_routes(request: Request, use_case: str) -> dict[str, Any]:
    """Replace the routes of `use_case`; live weights must sum to 100 (DELETE removes them)."""
    gateway = _gateway(request)
    require_admin(request.headers.get("authorization"), gateway.config.admin_token)
    if not gateway.knows(use_case):
        raise GatewayError(404, f"unknown use case {use_case!r}", code="use_case_not_found")
    raw = await read_body(request, gateway.config.max_admin_body_bytes)
    try:
        entries = _ROUTES.validate_python(parse_json(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GatewayError(
            400,
            f"routes must be a JSON list of {{version, weight, shadow}}: {first['msg']} "
            f"(at {where or 'body'})",
        ) from exc
    routes = [Route(e.version, e.weight, e.shadow) for e in entries]
    live_total = sum(r.weight for r in routes if not r.shadow)
    if live_total != 100:
        raise GatewayError(
            400,
            f"live weights must sum to 100; they sum to {live_total}. A PUT always leaves "
            f"{use_case!r} served: to take all of its traffic away, DELETE "
            f"/admin/routes/{use_case}",
            param="weight",
            code="weights_not_100",
        )
    try:
        check_routes(routes)
    except StateStoreError as exc:
        raise GatewayError(400, str(exc), param="weight") from exc
    # Refuse a version the registry does not know now, rather than have the watcher retry it.
    for version in {r.version for r in routes if r.weight > 0}:
        try:
            await asyncio.to_thread(gateway.resolver.describe, Target(use_case, version))
        except TargetError as exc:
            raise GatewayError(400, redact_text(str(exc)), param="version") from exc
    return await _write(request, gateway, use_case, routes)


@admin_router.delete("/admin/routes/{use_case}")
async def remove_routes(request: Request, use_case: str) -> dict[str, Any]:
    """Take all of `use_case`'s traffic away (live and shadow): its requests get 503 until
    routes are written again. The explicit form of what an empty PUT is refused for."""
    gateway = _gateway(request)
    require_admin(request.headers.get("authorization"), gateway.config.admin_token)
    if not gateway.knows(use_case):
        raise GatewayError(404, f"unknown use case {use_case!r}", code="use_case_not_found")
    return await _write(request, gateway, use_case, [])


async def _write(
    request: Request, gateway: Gateway, use_case: str, routes: list[Route]
) -> dict[str, Any]:
    expected = request.query_params.get("expected_generation")
    try:
        expected_generation = int(expected) if expected is not None else None
    except ValueError as exc:
        raise GatewayError(
            400, "expected_generation must be an integer", param="expected_generation"
        ) from exc
    try:
        generation = await asyncio.to_thread(
            gateway.store.write,
            use_case,
            routes,
            writer=Writer.MANUAL,
            expected_generation=expected_generation,
        )
    except StateStoreError as exc:
        raise GatewayError(409, str(exc), code="conflict") from exc
    if request.query_params.get("wait", "false").lower() in ("1", "true", "yes"):
        await _until_served(gateway, use_case, generation)
    return {"written_generation": generation, **_routes_view(gateway, use_case)}


async def _until_served(gateway: Gateway, use_case: str, generation: int) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        plan = gateway.watcher.plan(use_case)
        if plan is not None and plan.generation >= generation:
            return
        pending = gateway.watcher.pending.get(use_case)
        if pending is not None and pending.generation == generation:
            raise GatewayError(
                502,
                f"routes written (generation {generation}) but not served yet: {pending.reason}",
                code="routes_pending",
            )
        await asyncio.sleep(0.05)
    raise GatewayError(504, f"routes written (generation {generation}) but not served yet")
