"""Choosing a target for one request from a use case's route table.

Anonymous requests follow a smooth weighted round-robin (the nginx algorithm): over any run
of 100 requests each version gets exactly its weight, so a 5 % canary gets its 5 requests
rather than 5 on average, and analysis windows fill predictably. A request with a session id
is sticky instead: a hash of the session id and the table's generation picks a bucket in
0..9999, so a player stays on one variant for as long as the weights do not change.

Shadow routes receive a copy of a share of the traffic equal to their weight (100 = every
request); their answers are logged but never returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.observe.state import Route

BUCKETS = 10_000


def sticky_bucket(session_id: str, generation: int) -> int:
    """A stable bucket in 0..BUCKETS-1 for a session under one route-table generation."""
    digest = hashlib.blake2b(f"{generation}\0{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def version_for_bucket(routes: Sequence[Route], bucket: int) -> str:
    """The live route whose cumulative share holds `bucket`."""
    edge = 0
    for route in routes:
        edge += route.weight * (BUCKETS // 100)
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

    @classmethod
    def of(cls, use_case: str, generation: int, routes: Sequence[Route]) -> RoutePlan:
        live = tuple(sorted(r for r in routes if not r.shadow and r.weight > 0))
        shadows = tuple(sorted(r for r in routes if r.shadow and r.weight > 0))
        return cls(use_case, generation, live, shadows)

    def __post_init__(self) -> None:
        self._current = [0] * len(self.live)
        self._shadow_credit = [0] * len(self.shadows)

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
            return version_for_bucket(self.live, sticky_bucket(session_id, self.generation))
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
