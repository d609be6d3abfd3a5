"""What observing needs from the registry and the route table: one consistent read each.

The protocols live here, with their consumer: the adapters (`registry/`, `traffic/`) meet
them without `observe` knowing any of them, so the dependency points one way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from reconciler.observe.state import RegisteredModelSnapshot, TrafficSnapshot


class RegistryReader(Protocol):
    def snapshot(self, names: Sequence[str]) -> Mapping[str, RegisteredModelSnapshot | None]:
        """Each named registered model with its aliases, tags and versions; None if absent."""
        ...


class TrafficReader(Protocol):
    def snapshot(self, use_cases: Sequence[str]) -> Mapping[str, TrafficSnapshot]:
        """The routes (and last-applied routes) of each use case; empty ones for unknown."""
        ...
