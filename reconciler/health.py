"""Sync and health of a use case, ordered like Argo CD's so the worst one can be picked."""

from __future__ import annotations

import enum


class Sync(enum.StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"


class Health(enum.StrEnum):
    """Best first: `worst()` picks by this order."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"  # a rollout is under way
    SUSPENDED = "Suspended"  # waits for traffic, an operator, or the next apply
    MISSING = "Missing"  # nothing serves it: no live routes
    DEGRADED = "Degraded"  # failed, or rolled back: needs attention

    @property
    def rank(self) -> int:
        return list(Health).index(self)


def worst(healths: list[Health]) -> Health:
    return max(healths, key=lambda h: h.rank, default=Health.HEALTHY)
