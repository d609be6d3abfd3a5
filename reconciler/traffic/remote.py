"""The route table read over HTTP from the gateway that serves it.

A pull request's plan runs on a throw-away CI runner, far from the serving host's state
folder; without the live routes it would plan shifts that are already done. With
`RECONCILER_GATEWAY_URL` set, `plan` and `status` read the table from the gateway's
`GET /admin/traffic` instead: the same snapshot (routes and last-applied routes), so drift
and the observed serial come out as they would on the serving host. Applying still needs the
state folder itself (it writes the table, the journal and the locks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.errors import ReconcilerError
from reconciler.observe.state import Route, TrafficSnapshot
from reconciler.redaction import redact_text
from reconciler.settings import redact_uri

TRAFFIC_PATH = "/admin/traffic"


class _WireRoute(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    version: str
    weight: int
    shadow: bool = False


class _WireSnapshot(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    routes: list[_WireRoute]
    applied: list[_WireRoute] | None = None
    generation: int = 0


class _WireTraffic(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    use_cases: dict[str, _WireSnapshot]


def _routes(wire: list[_WireRoute]) -> tuple[Route, ...]:
    return tuple(Route(r.version, r.weight, r.shadow) for r in wire)


class GatewayTrafficReader:
    """Reads the route table from a running gateway (`RECONCILER_GATEWAY_URL`)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._transport = transport

    def snapshot(self, use_cases: Sequence[str]) -> Mapping[str, TrafficSnapshot]:
        where = redact_uri(self.base_url)
        headers = {"authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
                response = client.get(
                    f"{self.base_url}{TRAFFIC_PATH}",
                    params=[("use_case", name) for name in use_cases],
                    headers=headers,
                )
        except httpx.HTTPError as exc:
            raise ReconcilerError(
                f"cannot read the route table from the gateway at {where}: "
                f"{type(exc).__name__}: {redact_text(str(exc))}"
            ) from None
        if response.status_code != 200:
            raise ReconcilerError(
                f"the gateway at {where} answered {response.status_code} for {TRAFFIC_PATH}: "
                f"{redact_text(response.text[:300])}"
            )
        try:
            wire = _WireTraffic.model_validate_json(response.content)
        except ValidationError as exc:
            raise ReconcilerError(
                f"the gateway at {where} sent a route table this version cannot read: "
                f"{exc.errors()[0]['msg']}"
            ) from None
        found = {
            name: TrafficSnapshot(
                routes=_routes(snap.routes),
                applied=None if snap.applied is None else _routes(snap.applied),
                generation=snap.generation,
            )
            for name, snap in wire.use_cases.items()
        }
        return MappingProxyType({name: found.get(name, TrafficSnapshot()) for name in use_cases})


ROUTES_PATH = "/admin/routes"


class _WireTarget(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    version: str
    ready: bool = True
    error: str | None = None


class _WireRouteView(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    use_case: str
    targets: list[_WireTarget] = []


class _WireRoutes(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    use_cases: list[_WireRouteView]


def unservable_targets(
    base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
) -> Mapping[str, tuple[str, ...]]:
    """Per use case, why the gateway cannot serve a version its routes name (redacted by the
    gateway): `status` names the real cause instead of calling such a use case healthy. An
    unreachable gateway is itself the cause, for every use case."""
    where = redact_uri(base_url.rstrip("/"))
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.get(f"{base_url.rstrip('/')}{ROUTES_PATH}")
        response.raise_for_status()
        wire = _WireRoutes.model_validate_json(response.content)
    except (httpx.HTTPError, ValidationError) as exc:
        reason = f"the gateway at {where} did not answer {ROUTES_PATH}: {type(exc).__name__}"
        return MappingProxyType({"*": (reason,)})
    return MappingProxyType(
        {
            view.use_case: tuple(
                f"version {t.version} cannot be served: {redact_text(t.error or 'not ready')}"
                for t in view.targets
                if not t.ready
            )
            for view in wire.use_cases
        }
    )
