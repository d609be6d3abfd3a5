"""What the planner needs of a route table: one consistent read of the use cases it plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from reconciler.observe.state import TrafficSnapshot


class TrafficReader(Protocol):
    def snapshot(self, use_cases: Sequence[str]) -> Mapping[str, TrafficSnapshot]:
        """The routes (and last-applied routes) of each use case; empty ones for unknown."""
        ...
