"""Choosing a target for one request from a use case's route table.

Anonymous requests follow a smooth weighted round-robin (the nginx algorithm): over any run
of 100 requests each version gets exactly its weight, so a 5 % canary gets its 5 requests
rather than 5 on average, and analysis windows fill predictably.

A request with a session id is sticky instead. The session alone (with the use case, so one
player is not the canary of every use case at once) picks a bucket in 0..9999 that never
changes; the route table only decides which version owns which bucket range. Ranges are laid
out newest version first, each as wide as its weight, so:

- rewriting the table with the same weights (a new generation) moves nobody;
- a canary step (10 % → 25 % → 50 %) only grows the canary's range from bucket 0 upwards:
  every player it already had stays on it, and only players of the versions after it move;
- a rollback (canary back to 0) hands its players to the version after it and moves no one
  else.

With more than two live versions, growing one also shifts the ranges of the older versions
behind it; the two-version canary, the case that matters for analysis, is exact.

Shadow routes receive a copy of a share of the traffic equal to their weight (100 = every
request); their answers are logged but never returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.observe.state import Route

BUCKETS = 10_000
_BUCKETS_PER_PERCENT = BUCKETS // 100
# Fixed, so a bucket means the same in every gateway replica and after every restart.
_STICKY_KEY = b"reconciler.gateway.sticky.v2"


def sticky_bucket(use_case: str, session_id: str) -> int:
    """The bucket in 0..BUCKETS-1 of a session of `use_case`: the same for ever."""
    digest = hashlib.blake2b(
        f"{use_case}\0{session_id}".encode(), digest_size=8, key=_STICKY_KEY
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def newest_first(routes: Sequence[Route]) -> tuple[Route, ...]:
    """`routes` with the newest version first: MLflow versions are increasing integers (a
    canary is newer than the champion); other names follow, in reverse text order."""

    def key(route: Route) -> tuple[int, int, str]:
        if route.version.isdigit():
            return (0, -int(route.version), "")
        return (1, 0, route.version)

    return tuple(sorted(routes, key=key))


def version_for_bucket(routes: Sequence[Route], bucket: int) -> str:
    """The route, in the order given, whose cumulative share holds `bucket`."""
    edge = 0
    for route in routes:
        edge += route.weight * _BUCKETS_PER_PERCENT
        if bucket < edge:
            return route.version
    return routes[-1].version


@dataclass
class RoutePlan:
    """The routes of one use case at one generation, and the round-robin state over them."""

    use_case: str
    generation: int
    live: tuple[Route, ...]
    shadows: tuple[Route, ...] = ()
    _current: list[int] = field(default_factory=list, repr=False)
    _shadow_credit: list[int] = field(default_factory=list, repr=False)
    _sticky_order: tuple[Route, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, use_case: str, generation: int, routes: Sequence[Route]) -> RoutePlan:
        live = tuple(sorted(r for r in routes if not r.shadow and r.weight > 0))
        shadows = tuple(sorted(r for r in routes if r.shadow and r.weight > 0))
        return cls(use_case, generation, live, shadows)

    def __post_init__(self) -> None:
        self._current = [0] * len(self.live)
        self._shadow_credit = [0] * len(self.shadows)
        self._sticky_order = newest_first(self.live)

    @property
    def servable(self) -> bool:
        return bool(self.live)

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version this plan may send traffic to, live and shadow."""
        return tuple(dict.fromkeys(r.version for r in (*self.live, *self.shadows)))

    def choose(self, session_id: str | None = None) -> str:
        """The version that serves the next request; requires `servable`."""
        if session_id:
            bucket = sticky_bucket(self.use_case, session_id)
            return version_for_bucket(self._sticky_order, bucket)
        total = 0
        best = 0
        for index, route in enumerate(self.live):
            self._current[index] += route.weight
            total += route.weight
            if self._current[index] > self._current[best]:
                best = index
        self._current[best] -= total
        return self.live[best].version

    def mirrors(self) -> tuple[str, ...]:
        """The shadow versions that get a copy of the next request."""
        chosen = []
        for index, route in enumerate(self.shadows):
            self._shadow_credit[index] += route.weight
            if self._shadow_credit[index] >= 100:
                self._shadow_credit[index] -= 100
                chosen.append(route.version)
        return tuple(chosen)
