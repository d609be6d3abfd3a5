"""Does a planned change still apply? Compare its `before` and `after` with what is now.

A change is DONE when everything it sets already holds (a resumed apply skips it), HOLDS when
everything it expects holds, and STALE otherwise: the world moved since the plan was made, and
acting on the plan would undo someone else's change. "(new)" and "(new base)" stand for the
versions earlier changes of the same plan made; they are resolved before checking.

A rollout is never DONE by its routes: the candidate standing at 100% says nothing about
whether 100% was judged. Whether a rollout is finished is the rollout machine's to say, from
its journal; whether a promotion is earned, the promotion's (a recorded, passed analysis).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.lineage import Alias
from reconciler.observe.state import RegisteredModelSnapshot, Route, TrafficSnapshot
from reconciler.plan.model import (
    NEW_BASE,
    NEW_VERSION,
    AliasMap,
    Change,
    PromoteChange,
    RollbackChange,
    RouteRef,
    ShiftChange,
    VersionRef,
)
from reconciler.plan.planned import live_routes


class Precondition(enum.Enum):
    HOLDS = "holds"
    DONE = "done"
    STALE = "stale"


@dataclass(frozen=True)
class PreconditionCheck:
    state: Precondition
    detail: str = ""


@dataclass(frozen=True)
class MadeVersions:
    """The versions the plan's placeholders stand for, as far as they are made."""

    candidate: str | None
    base: str | None

    def resolve(self, ref: VersionRef | None) -> str | None:
        if ref == NEW_VERSION:
            return self.candidate
        if ref == NEW_BASE:
            return self.base
        return ref

    def routes(self, refs: Sequence[RouteRef]) -> tuple[Route, ...]:
        return tuple(
            sorted(
                Route(self.resolve(r.version) or r.version, r.weight, r.shadow)
                for r in refs
                if r.weight > 0 or r.shadow
            )
        )

    def aliases(self, refs: AliasMap) -> dict[Alias, str | None]:
        return {alias: self.resolve(version) for alias, version in refs.items()}


def _alias_mismatches(
    expected: Mapping[Alias, str | None], model: RegisteredModelSnapshot | None
) -> list[str]:
    actual = model.aliases if model else {}
    return [
        f"{alias.value} is {actual.get(alias.value) or 'unset'}, expected {version or 'unset'}"
        for alias, version in expected.items()
        if actual.get(alias.value) != version
    ]


def _route_mismatches(expected: tuple[Route, ...], traffic: TrafficSnapshot) -> list[str]:
    actual = live_routes(traffic)
    wanted = tuple(r for r in expected if not r.shadow)
    if actual == wanted:
        return []
    shown = ", ".join(f"{r.version}={r.weight}%" for r in actual) or "none"
    return [f"routes are {shown}"]


def check(
    change: Change,
    model: RegisteredModelSnapshot | None,
    traffic: TrafficSnapshot,
    made: MadeVersions,
) -> PreconditionCheck:
    done: list[str] | None = None  # None: this change cannot be seen done from the world
    stale: list[str] = []
    if isinstance(change, PromoteChange):
        done = _alias_mismatches(made.aliases(change.after.aliases), model)
        stale = _alias_mismatches(made.aliases(change.before.aliases), model)
    elif isinstance(change, ShiftChange):
        if change.after.rollout is None:
            done = _route_mismatches(made.routes(change.after.routes), traffic)
        stale = _route_mismatches(made.routes(change.before.routes), traffic)
        stale += _alias_mismatches(made.aliases(change.before.aliases), model)
    elif isinstance(change, RollbackChange):
        done = _alias_mismatches(made.aliases(change.after.aliases), model)
        done += _route_mismatches(made.routes(change.after.routes), traffic)
        stale = _alias_mismatches(made.aliases(change.before.aliases), model)
        stale += _route_mismatches(made.routes(change.before.routes), traffic)
    if done == []:
        return PreconditionCheck(Precondition.DONE, "already in the planned state")
    if stale:
        return PreconditionCheck(Precondition.STALE, "; ".join(stale))
    return PreconditionCheck(Precondition.HOLDS)
