"""LISTEN on a PostgreSQL channel in a thread, so a change another host commits is seen at once.

One dedicated connection per listener (a pooled one would be handed to someone else), in
autocommit mode as LISTEN needs. When the connection drops (a restart, a failover), the
listener reconnects with backoff and then reports `"*"` - something may have changed while
it was deaf - so its user reads everything again; readers also poll, so a notice lost in
between only costs a poll interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from reconciler.state_store.database import StateDatabase

log = logging.getLogger(__name__)

EVERYTHING = "*"
_WAIT_SECONDS = 0.5  # how often the thread looks up from the socket to see if it must stop


class RouteNotices:
    """Calls `on_notice(payload)` for every NOTIFY on `channel` until stopped."""

    def __init__(
        self,
        database: StateDatabase,
        channel: str,
        on_notice: Callable[[str], None],
    ) -> None:
        self.database = database
        self.channel = channel
        self.on_notice = on_notice
        self.listening = threading.Event()  # set while a LISTEN connection is up
        self.received = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"listen-{self.channel}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        attempt = 0
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.database.libpq_conninfo(), autocommit=True, connect_timeout=10
                ) as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listening.set()
                    attempt = 0
                    if not first:
                        self._deliver(EVERYTHING)
                    first = False
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=_WAIT_SECONDS):
                            self._deliver(notice.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                first = False
                if self._stop.is_set():
                    return
                log.warning(
                    "listening for route changes: %s; polling until it is back",
                    self.database.describe(exc),
                )
                self._stop.wait(self.database.backoff(attempt))
                attempt += 1
        self.listening.clear()

    def _deliver(self, payload: str) -> None:
        self.received += 1
        try:
            self.on_notice(payload)
        except Exception:  # the listener outlives a failing callback
            log.exception("handling a route change notice failed")
