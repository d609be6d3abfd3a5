"""The value one use case's plan is built on: what is observed, and what the changes planned
so far will leave behind.

The diff is a chain of stage functions (register → serve the base → train → evaluate → roll
out → heal drift), each taking a `Planned` and returning a new one with its changes added and
the planned champion and routes moved forward, so every stage sees the world as the earlier
changes of the same plan will leave it. Pure values only: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.lineage import Alias
from reconciler.observe.state import (
    RegisteredModelSnapshot,
    Route,
    TrafficSnapshot,
    VersionSnapshot,
    normalize_routes,
)
from reconciler.plan.model import Change, RouteRef, VersionRef
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.model import UseCase


def live_routes(traffic: TrafficSnapshot) -> tuple[Route, ...]:
    return normalize_routes([r for r in traffic.routes if not r.shadow])


def route_refs(routes: Sequence[Route]) -> list[RouteRef]:
    return [RouteRef.of(r) for r in normalize_routes(list(routes))]


def all_to(version: VersionRef) -> tuple[Route, ...]:
    return (Route(version, 100),)


@dataclass(frozen=True)
class Planned:
    use_case: UseCase
    identity: UseCaseIdentity
    model: RegisteredModelSnapshot | None
    traffic: TrafficSnapshot
    changes: tuple[Change, ...] = ()
    # Set when an earlier change of this plan serves the base model first: the champion and
    # live routes the later changes will find.
    planned_champion: VersionRef | None = None
    planned_routes: tuple[Route, ...] | None = None

    @property
    def name(self) -> str:
        return self.use_case.name

    @property
    def aliases(self) -> Mapping[str, str]:
        return self.model.aliases if self.model else {}

    @property
    def applied(self) -> Mapping[str, str] | None:
        """The aliases the reconciler last set (None: it never recorded any)."""
        return self.model.applied_aliases() if self.model else None

    def alias(self, name: Alias) -> str | None:
        return self.aliases.get(name.value)

    def exists(self, version: str | None) -> bool:
        return self.model is not None and self.model.version(version) is not None

    def find(self, key: str) -> VersionSnapshot | None:
        return self.model.find_by_key(key) if self.model else None

    def champion(self) -> VersionRef | None:
        """The champion the next change will find."""
        return self.planned_champion or self.alias(Alias.CHAMPION)

    def champion_is_real(self) -> bool:
        champion = self.champion()
        return champion is not None and (champion == self.planned_champion or self.exists(champion))

    def current_routes(self) -> tuple[Route, ...]:
        return self.planned_routes or live_routes(self.traffic)

    def moved_by_hand(self, alias: Alias) -> bool:
        return self.applied is not None and self.applied.get(alias.value) != self.alias(alias)

    def heal_note(self) -> str:
        if self.use_case.spec.sync_policy.self_heal:
            return ""
        return " [selfHeal is off: apply reports this drift and leaves it]"

    def routes_note(self) -> str:
        notes = []
        missing = sorted(
            {r.version for r in live_routes(self.traffic) if not self.exists(r.version)}
        )
        if missing:
            notes.append(f"routes name versions that do not exist: {', '.join(missing)}")
        if self.traffic.drifted:
            notes.append("weights were edited outside the reconciler")
        return f" ({'; '.join(notes)})" if notes else ""

    def add(self, change: Change) -> Planned:
        return dataclasses.replace(self, changes=(*self.changes, change))

    def serving(self, champion: VersionRef, routes: tuple[Route, ...]) -> Planned:
        return dataclasses.replace(self, planned_champion=champion, planned_routes=routes)
