"""What is: immutable snapshots of the model registry and the live traffic split.

The planner reads only these values, never a client, which keeps `plan.diff` pure. The
`serial` of an `ObservedState` is a digest of everything the planner can see, so a saved plan
can later be refused as stale when the world moved on.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reconciler import lineage
from reconciler.digest import digest_of

READY = "READY"


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class VersionSnapshot:
    version: str
    status: str = READY
    tags: Mapping[str, str] = field(default_factory=_frozen)
    source: str = ""
    run_id: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == READY

    def tag(self, name: str) -> str | None:
        return self.tags.get(name)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "tags": dict(sorted(self.tags.items())),
            "source": self.source,
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class RegisteredModelSnapshot:
    name: str
    aliases: Mapping[str, str] = field(default_factory=_frozen)
    tags: Mapping[str, str] = field(default_factory=_frozen)
    versions: tuple[VersionSnapshot, ...] = ()

    def version(self, number: str | None) -> VersionSnapshot | None:
        if number is None:
            return None
        return next((v for v in self.versions if v.version == number), None)

    def find_by_key(self, key: str) -> VersionSnapshot | None:
        """The newest ready version made for `key`."""
        matches = [v for v in self.versions if v.ready and v.tag(lineage.KEY) == key]
        return max(matches, key=lambda v: int(v.version), default=None)

    def applied_aliases(self) -> Mapping[str, str] | None:
        """The aliases the reconciler last set, or None when it never recorded any."""
        raw = self.tags.get(lineage.APPLIED_ALIASES)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        return _frozen({str(k): str(v) for k, v in value.items() if v is not None})

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": dict(sorted(self.aliases.items())),
            "tags": dict(sorted(self.tags.items())),
            "versions": [v.as_json() for v in sorted(self.versions, key=lambda v: int(v.version))],
        }


@dataclass(frozen=True, order=True)
class Route:
    """One target of a use case's traffic: a model version and its share in percent."""

    version: str
    weight: int
    shadow: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "weight": self.weight, "shadow": self.shadow}


def normalize_routes(routes: tuple[Route, ...] | list[Route]) -> tuple[Route, ...]:
    """Routes in a canonical order, zero-weight live routes dropped, for comparisons."""
    return tuple(sorted(r for r in routes if r.weight > 0 or r.shadow))


@dataclass(frozen=True)
class TrafficSnapshot:
    """The live route table of one use case, and what the reconciler last wrote there."""

    routes: tuple[Route, ...] = ()
    applied: tuple[Route, ...] | None = None
    generation: int = 0

    def weight_of(self, version: str) -> int:
        return sum(r.weight for r in self.routes if r.version == version and not r.shadow)

    @property
    def drifted(self) -> bool:
        """True when someone other than the reconciler changed the routes since it wrote them."""
        return self.applied is not None and normalize_routes(self.routes) != normalize_routes(
            self.applied
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "routes": [r.as_json() for r in normalize_routes(self.routes)],
            "applied": None
            if self.applied is None
            else [r.as_json() for r in normalize_routes(self.applied)],
        }


@dataclass(frozen=True)
class ObservedState:
    registry: Mapping[str, RegisteredModelSnapshot | None]
    traffic: Mapping[str, TrafficSnapshot]

    @property
    def serial(self) -> str:
        return self.serial_of(models=None, use_cases=None)

    def serial_of(
        self, *, models: Collection[str] | None, use_cases: Collection[str] | None
    ) -> str:
        """The serial of part of what was observed: these registered models and these use
        cases' traffic (None: all of them, which is `serial`). A plan for some use cases is
        stale only when what it was made from changed, not when another use case moved on
        (Terraform's `-target`)."""
        return digest_of(
            {
                "registry": {
                    name: None if rm is None else rm.as_json()
                    for name, rm in sorted(self.registry.items())
                    if models is None or name in models
                },
                "traffic": {
                    name: t.as_json()
                    for name, t in sorted(self.traffic.items())
                    if use_cases is None or name in use_cases
                },
            }
        )

    def registered_model(self, name: str) -> RegisteredModelSnapshot | None:
        return self.registry.get(name)

    def traffic_of(self, use_case: str) -> TrafficSnapshot:
        return self.traffic.get(use_case, TrafficSnapshot())
