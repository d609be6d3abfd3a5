"""Sync and health of a use case, ordered like Argo CD's so the worst one can be picked."""

from __future__ import annotations

import enum


class Sync(enum.StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"


class Health(enum.StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    SUSPENDED = "Suspended"
    DEGRADED = "Degraded"

    @property
    def rank(self) -> int:
        return list(Health).index(self)

    def is_worse(self, other: Health) -> bool:
        return self.rank > other.rank


def worst(healths: list[Health]) -> Health:
    return max(healths, key=lambda h: h.rank, default=Health.HEALTHY)
