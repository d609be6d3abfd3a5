"""A webhook receiver on 127.0.0.1: records every delivery, verifies nothing itself.

Tests read what arrived (`bodies`, `events`), make it answer an error (`status`), or hold
every answer until they `release` it - a receiver that hangs - to show that whatever the
receiver does, the reconciler's own work goes on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.stand_ins.http import Request, Response, Served, serve


@dataclass
class Receiver:
    served: Served
    status: int = 200
    held: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.held.set()  # answers at once unless a test holds it

    @property
    def url(self) -> str:
        return self.served.url + "/hooks/reconciler"

    @property
    def deliveries(self) -> list[Request]:
        return [r for r in self.served.requests if r.method == "POST"]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.deliveries]

    def events(self) -> list[str]:
        return [r.headers.get("x-reconciler-event", "") for r in self.deliveries]

    def hold(self) -> None:
        self.held.clear()

    def release(self) -> None:
        self.held.set()

    def wait_for(self, condition: Callable[[Receiver], bool], timeout: float = 60.0) -> None:
        """Return once `condition` holds; fail after `timeout` seconds (a bound, not a pace)."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            assert time.monotonic() < deadline, f"not received in {timeout:g}s: {self.events()}"
            time.sleep(0.05)


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    def handle(request: Request) -> Response:
        receiver = box[0]
        receiver.held.wait(120)
        return Response(receiver.status, b"{}", {"Content-Type": "application/json"})

    with serve(handle) as served:
        receiver = Receiver(served)
        box.append(receiver)
        try:
            yield receiver
        finally:
            receiver.release()
