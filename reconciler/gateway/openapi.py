"""The gateway's OpenAPI document, served at /openapi.json.

The handlers read their bodies and query strings themselves (so every client mistake gets an
OpenAI-style 4xx), which leaves FastAPI nothing to describe them from. The document adds
them from the same pydantic wire models the handlers validate with, plus the query
parameters each admin endpoint reads, and names the use cases this gateway serves as the
values of `model`. So the document says what the gateway really accepts, and a fuzzer
driven by it (`tests/gateway/test_gateway_fuzz.py`, schemathesis) reaches past the 404 of an
unknown model into the code that serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter

from reconciler import __version__
from reconciler.gateway.openai_wire import (
    ChatCompletionRequest,
    CompletionRequest,
    FeedbackRequest,
    RouteEntry,
)

_REF = "#/components/schemas/{model}"
_BODIES: dict[tuple[str, str], type[BaseModel] | Any] = {
    ("/v1/chat/completions", "post"): ChatCompletionRequest,
    ("/v1/completions", "post"): CompletionRequest,
    ("/v1/feedback", "post"): FeedbackRequest,
    ("/admin/routes/{use_case}", "put"): list[RouteEntry],
}
_WRITE_PARAMETERS = [
    ("wait", {"type": "boolean"}, False, "Answer once the gateway serves the new routes."),
    (
        "expected_generation",
        {"type": "integer"},
        False,
        "Write only if the route table is still at this generation (409 otherwise).",
    ),
]
_PARAMETERS: dict[tuple[str, str], list[tuple[str, dict[str, Any], bool, str]]] = {
    ("/admin/metrics", "get"): [
        ("use_case", {"type": "string"}, True, "The use case whose versions to report."),
        ("since", {"type": "number"}, True, "Window start, unix seconds."),
        ("until", {"type": "number"}, False, "Window end (exclusive), unix seconds."),
        ("shadow", {"type": "boolean"}, False, "Report shadow copies instead of live traffic."),
    ],
    ("/admin/usage", "get"): [
        ("use_case", {"type": "string"}, False, "Only this use case."),
    ],
    ("/admin/traffic", "get"): [
        (
            "use_case",
            {"type": "array", "items": {"type": "string"}},
            False,
            "Only these use cases (repeat the parameter).",
        ),
    ],
    ("/admin/routes/{use_case}", "put"): _WRITE_PARAMETERS,
    ("/admin/routes/{use_case}", "delete"): _WRITE_PARAMETERS,
}
_ADMIN_WRITES = (("/admin/routes/{use_case}", "put"), ("/admin/routes/{use_case}", "delete"))


def install_openapi(app: FastAPI, use_cases: Callable[[], Sequence[str]]) -> None:
    """Serve the document described above as `app.openapi()`, built once."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, tuple(use_cases()))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _document(app: FastAPI, use_cases: tuple[str, ...]) -> dict[str, Any]:
    spec = get_openapi(
        title="reconciler gateway",
        version=__version__,
        description="OpenAI-compatible serving of the reconciler's use cases, and its admin API.",
        routes=app.routes,
    )
    components = spec.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    for (path, method), body in _BODIES.items():
        operation = spec["paths"][path][method]
        adapter = TypeAdapter(body)
        schema = adapter.json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        if isinstance(body, type) and issubclass(body, BaseModel):
            schemas[body.__name__] = schema
            schema = {"$ref": _REF.format(model=body.__name__)}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    for name in (ChatCompletionRequest.__name__, CompletionRequest.__name__):
        model = schemas[name]["properties"]["model"]
        model["description"] = "The use case to serve the request."
        if use_cases:
            model["enum"] = list(use_cases)
    for (path, method), parameters in _PARAMETERS.items():
        operation = spec["paths"][path][method]
        operation.setdefault("parameters", []).extend(
            {
                "name": name,
                "in": "query",
                "required": required,
                "schema": schema,
                "description": description,
            }
            for name, schema, required, description in parameters
        )
    components["securitySchemes"] = {"adminToken": {"type": "http", "scheme": "bearer"}}
    for path, method in _ADMIN_WRITES:
        spec["paths"][path][method]["security"] = [{"adminToken": []}]
    return spec
