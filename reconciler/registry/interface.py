"""The registry as the core sees it: small, and free of any SDK type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from reconciler.observe.state import RegisteredModelSnapshot


class RegistryReader(Protocol):
    def snapshot(self, names: Sequence[str]) -> Mapping[str, RegisteredModelSnapshot | None]:
        """Each named registered model with its aliases, tags and versions; None if absent."""
        ...
