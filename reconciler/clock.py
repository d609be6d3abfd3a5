"""The one clock: wall time, monotonic time and waiting, injected wherever time matters.

Rollouts, the journal, locks, the route table and the controller take a `Clock` instead of
calling `time` themselves, so a test drives half an hour of bakes on a `ManualClock` in
microseconds and gets the same result every time, and nothing in the reconciler's decisions
depends on how busy the machine is.

`--time-scale` does not live here: it scales the *durations* a rollout is configured with
(bake time, analysis interval, progress deadline) alike, while every timestamp stays real
wall time, because other processes (the gateway's request log) stamp the same windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for measuring waits."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when told (or when someone sleeps on it), for tests.

    `sleep` advances time at once, then calls each `on_sleep` hook with the interval slept
    through, so a test can let "traffic" happen during a bake without any real waiting.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []
        self.on_sleep: list[Callable[[float, float], None]] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes back")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        start = self.now()
        self.advance(max(0.0, seconds))
        for hook in self.on_sleep:
            hook(start, self.now())


def iso(clock: Clock) -> str:
    """The clock's now as an ISO 8601 UTC timestamp, to the second."""
    return datetime.fromtimestamp(clock.now(), UTC).isoformat(timespec="seconds")


SYSTEM_CLOCK = SystemClock()
