"""Does a planned change still apply? Compare its `before` and `after` with what is now.

A change is DONE when everything it sets already holds (a resumed apply skips it), HOLDS when
everything it expects holds, and STALE otherwise: the world moved since the plan was made, and
acting on the plan would undo someone else's change. "(new)" and "(new base)" in a plan stand for
the versions earlier changes of the same plan made; they are resolved before checking.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from reconciler.lineage import MANAGED_ALIASES
from reconciler.observe.state import RegisteredModelSnapshot, Route, TrafficSnapshot
from reconciler.plan.diff import live_routes
from reconciler.plan.model import NEW_BASE, NEW_VERSION, Change

_ALIASES = {a.value for a in MANAGED_ALIASES}


class Precondition(enum.Enum):
    HOLDS = "holds"
    DONE = "done"
    STALE = "stale"


@dataclass(frozen=True)
class Check:
    state: Precondition
    detail: str = ""


def resolve(value: Any, candidate: str | None, base: str | None) -> Any:
    """`value` with the plan's placeholders replaced by the versions made so far."""
    if value == NEW_VERSION:
        return candidate
    if value == NEW_BASE:
        return base
    if isinstance(value, list):
        return [resolve(v, candidate, base) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, candidate, base) for k, v in value.items()}
    return value


def routes_of(value: list[dict[str, Any]]) -> tuple[Route, ...]:
    return tuple(sorted(Route(str(r["version"]), int(r["weight"])) for r in value))


def _mismatches(
    expected: dict[str, Any], model: RegisteredModelSnapshot | None, traffic: TrafficSnapshot
) -> list[str]:
    aliases = model.aliases if model else {}
    found = []
    for key, value in expected.items():
        if key in _ALIASES and aliases.get(key) != value:
            found.append(f"{key} is {aliases.get(key) or 'unset'}, expected {value or 'unset'}")
        elif key == "routes":
            actual = live_routes(traffic)
            if actual != routes_of(value):
                shown = ", ".join(f"{r.version}={r.weight}%" for r in actual) or "none"
                found.append(f"routes are {shown}")
    return found


def check(
    change: Change,
    model: RegisteredModelSnapshot | None,
    traffic: TrafficSnapshot,
    candidate: str | None,
    base: str | None,
) -> Check:
    after = resolve(change.after or {}, candidate, base)
    before = resolve(change.before or {}, candidate, base)
    settable = {k: v for k, v in after.items() if k in _ALIASES or k == "routes"}
    if settable and not _mismatches(settable, model, traffic):
        return Check(Precondition.DONE, "already in the planned state")
    problems = _mismatches(before, model, traffic)
    if problems:
        return Check(Precondition.STALE, "; ".join(problems))
    return Check(Precondition.HOLDS)
