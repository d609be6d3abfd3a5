"""The clock, injected so rollouts are tested and demonstrated in seconds, not hours.

`now()` is always wall time (it stamps metric windows and history, which other processes also
write); only waiting is scaled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of rollout time."""
        ...


@dataclass(frozen=True)
class ScaledClock:
    """Wall time, with waits multiplied by `scale` (1.0 in production; 0.001 for a demo)."""

    scale: float = 1.0

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds * self.scale)
