"""Per-use-case locks shared by every host: PostgreSQL session-level advisory locks.

A lock is held by one database session opened for it, so the server releases it the moment
its holder dies - a killed process, a lost host - without anyone guessing about pids. While
it holds the lock, the holder's row in `lock_holders` says who it is (pid, host, since), for
the message a waiting reconciler prints; a row whose session holds no lock any more is stale
and never shown (the holder is looked up through `pg_locks`, by backend pid).

A server restart ends every session, and with them the locks; the reconciler holding one
finds out at its next statement on that session, at release. Rollout state is in the journal
and every change re-checks its precondition, so a second reconciler that took over meanwhile
refuses stale work rather than doubling it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from reconciler.clock import SYSTEM_CLOCK, Clock, iso
from reconciler.errors import LockHeldError, StateStoreError
from reconciler.state_store.database import StateDatabase, lock_key

log = logging.getLogger(__name__)

_KIND = "use-case"
_HOLDER = """
SELECT h.pid, h.host, h.since
FROM pg_locks AS l
LEFT JOIN lock_holders AS h ON h.use_case = %(use_case)s AND h.backend_pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %(classid)s::oid AND l.objid = %(objid)s::oid
"""
_CLAIM = """
INSERT INTO lock_holders (use_case, backend_pid, pid, host, since)
VALUES (%(use_case)s, pg_backend_pid(), %(pid)s, %(host)s, %(since)s)
ON CONFLICT (use_case) DO UPDATE SET backend_pid = excluded.backend_pid,
    pid = excluded.pid, host = excluded.host, since = excluded.since
"""


def _oids(key: int) -> dict[str, int]:
    """How pg_locks shows a bigint advisory key: its high and low 32 bits, unsigned."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return {"classid": unsigned >> 32, "objid": unsigned & 0xFFFF_FFFF}


class AdvisoryLocks:
    """`UseCaseLocks` on a PostgreSQL state store."""

    def __init__(self, database: StateDatabase) -> None:
        self.database = database

    def _session(self) -> psycopg.Connection[tuple[object, ...]]:
        self.database.migrate()  # lock_holders must exist
        try:
            return psycopg.connect(
                self.database.libpq_conninfo(),
                autocommit=True,
                connect_timeout=10,
                application_name="reconciler lock",
            )
        except psycopg.Error as exc:
            raise StateStoreError(self.database.describe(exc)) from None

    def holder(self, use_case: str) -> str | None:
        """Who holds the lock of `use_case` now; None when nobody does."""
        parameters = {"use_case": use_case, **_oids(lock_key(_KIND, use_case))}
        with self._session() as session:
            try:
                row = session.execute(_HOLDER, parameters).fetchone()
            except psycopg.Error as exc:
                raise StateStoreError(self.database.describe(exc)) from None
        if row is None:
            return None
        pid, host, since = row
        if pid is None:
            return "another reconciler"
        return f"pid {pid} on {host} since {since}"

    @contextmanager
    def hold(
        self, use_case: str, *, timeout: float = 0.0, clock: Clock = SYSTEM_CLOCK
    ) -> Iterator[None]:
        """Hold the lock of `use_case`; wait up to `timeout` seconds, then raise LockHeldError."""
        key = lock_key(_KIND, use_case)
        session = self._session()
        try:
            deadline = clock.monotonic() + timeout
            while not _try_lock(session, key, self.database):
                if clock.monotonic() >= deadline:
                    holder = self.holder(use_case) or "another reconciler"
                    raise LockHeldError(
                        f"use case {use_case} is being reconciled by {holder}; "
                        f"waited {timeout:g}s (use --lock-timeout to wait longer)"
                    )
                clock.sleep(min(0.2, max(0.0, deadline - clock.monotonic())))
            try:
                session.execute(
                    _CLAIM,
                    {
                        "use_case": use_case,
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "since": iso(clock),
                    },
                )
                yield
            finally:
                _release(session, use_case, key, self.database)
        finally:
            session.close()


def _try_lock(
    session: psycopg.Connection[tuple[object, ...]], key: int, database: StateDatabase
) -> bool:
    try:
        row = session.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    except psycopg.Error as exc:
        raise StateStoreError(database.describe(exc)) from None
    return bool(row and row[0])


def _release(
    session: psycopg.Connection[tuple[object, ...]],
    use_case: str,
    key: int,
    database: StateDatabase,
) -> None:
    try:
        session.execute(
            "DELETE FROM lock_holders WHERE use_case = %s AND backend_pid = pg_backend_pid()",
            (use_case,),
        )
        session.execute("SELECT pg_advisory_unlock(%s)", (key,))
    except psycopg.Error as exc:
        # The session is gone (a server restart): the server has released the lock already.
        log.warning("releasing the lock of %s: %s", use_case, database.describe(exc))
