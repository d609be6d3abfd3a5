"""One state database: connections, transactions, retries and migrations, for both backends.

The stores never open connections themselves: each hands a function to `read` or `write`,
which runs it in one transaction and returns its result. That is where the backends differ,
so nothing else has to:

- SQLite (WAL, one file, 0600): a write transaction starts `BEGIN IMMEDIATE`, so two
  writers queue on the busy timeout instead of failing when one upgrades a read lock.
- PostgreSQL: a write may name a key to serialise on (`pg_advisory_xact_lock`), released
  with its transaction; a connection the server dropped (a restart, a failover) is replaced
  and the transaction run again, with backoff on the injected clock, for up to
  `retry_seconds` - so a database restart pauses a rollout instead of failing it, and a
  longer outage ends in a `StateStoreError` (temporary: the controller retries it later).
  A transaction either committed or did not: nothing is ever half written.

The schema is brought up to date on first use in each process (`migrations.upgrade`), so
an old state folder or an empty PostgreSQL database just works, and a schema newer than
this reconciler is refused with a message saying so.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.errors import StateStoreError
from reconciler.redaction import redact_text
from reconciler.settings import Settings
from reconciler.state_files import private_database
from reconciler.state_store.url import Backend, DatabaseUrl

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Connection], T]

# How long a transaction is retried while PostgreSQL cannot be reached.
RETRY_SECONDS = 30.0
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 1.0
_SQLITE_BUSY_MS = 30_000
_BEGIN_OPTION = "reconciler_sqlite_begin"
# A server that answered and refused us (wrong password, unknown role or database, no
# pg_hba.conf entry) will refuse again: that is reported at once, not waited out as an
# outage. libpq reports these at connect time without a SQLSTATE, so its wording tells.
_REFUSALS = (
    "authentication failed",
    "no password supplied",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
)


class StateStoreUnreachableError(StateStoreError):
    """The database could not be reached (or dropped the connection) for as long as allowed."""


def lock_key(kind: str, name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL advisory locks on (`kind`, `name`)."""
    digest = hashlib.blake2b(f"reconciler\0{kind}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class StateDatabase:
    """The state store's database, shared by every store of one process."""

    def __init__(
        self,
        url: str | DatabaseUrl,
        *,
        clock: Clock = SYSTEM_CLOCK,
        retry_seconds: float = RETRY_SECONDS,
        pool_size: int = 5,
    ) -> None:
        self.url = url if isinstance(url, DatabaseUrl) else DatabaseUrl.parse(url)
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.pool_size = pool_size
        # Transactions that met an unreachable server and were tried again (health, tests).
        self.retried = 0
        self._engine: Engine | None = None
        self._migrated = False
        self._guard = threading.Lock()
        self._migrating = threading.Lock()

    @classmethod
    def of(cls, settings: Settings) -> StateDatabase:
        """The state store `settings` name (`RECONCILER_DATABASE_URL`, or the state folder's),
        one per URL and process: a controller that composes its adapters every cycle reuses
        one pool of connections instead of opening another each time."""
        url = settings.database
        with _OPEN_GUARD:
            found = _OPEN.get(url)
            if found is None:
                found = _OPEN[url] = cls(url)
            return found

    @classmethod
    def dispose_all(cls) -> None:
        """Close every store `of` opened (tests, between databases)."""
        with _OPEN_GUARD:
            opened = list(_OPEN.values())
            _OPEN.clear()
        for database in opened:
            database.dispose()

    def __repr__(self) -> str:
        return f"StateDatabase({self.url.redacted})"

    @property
    def backend(self) -> Backend:
        return self.url.backend

    @property
    def is_postgresql(self) -> bool:
        return self.url.backend is Backend.POSTGRESQL

    @property
    def redacted(self) -> str:
        return self.url.redacted

    def libpq_conninfo(self) -> str:
        """The URL as libpq takes it, credentials included: for psycopg connections of our
        own (a LISTEN, a lock's session); never to be shown."""
        url = self.url.sqlalchemy_url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def exists(self) -> bool:
        """False only for a SQLite file nobody created yet (nor the files of 0.1 it would
        import): readers then see an empty store without creating one (a `plan` leaves no
        file behind)."""
        from reconciler.state_store.migrations import FILES_OF_0_1

        path = self.url.sqlite_path
        if path is None or path.exists():
            return True
        return any((path.parent / name).exists() for name in FILES_OF_0_1)

    # -- transactions -----------------------------------------------------------------------

    def read(self, work: Work[T], *, retry_seconds: float | None = None) -> T:
        """Run `work(connection)` in a transaction that only reads."""
        return self._run(work, write=False, key=None, retry_seconds=retry_seconds)

    def write(
        self,
        work: Work[T],
        *,
        serialise_on: tuple[str, str] | None = None,
        retry_seconds: float | None = None,
    ) -> T:
        """Run `work(connection)` in a write transaction. On PostgreSQL, `serialise_on`
        (kind, name) makes concurrent writers of the same thing take turns. `retry_seconds`
        overrides how long an unreachable server is waited for (0: not at all)."""
        return self._run(work, write=True, key=serialise_on, retry_seconds=retry_seconds)

    def connect(self) -> Connection:
        """A connection of the pool, for a caller that keeps one (the request-log writer);
        its transactions start as `write` ones do."""
        return self._connection(write=True)

    def is_unreachable(self, error: BaseException) -> bool:
        """Whether `error` says the server could not be reached or dropped the connection
        (worth trying again), rather than that the statement was wrong."""
        if not self.is_postgresql or not isinstance(error, DBAPIError):
            return False
        if any(refusal in str(error.orig) for refusal in _REFUSALS):
            return False
        return bool(error.connection_invalidated) or isinstance(error, OperationalError)

    def describe(self, error: BaseException) -> str:
        """One line about a database error, naming the store by its redacted URL only."""
        original = getattr(error, "orig", None) or error
        lines = redact_text(str(original)).strip().splitlines()
        return f"the state store {self.redacted}: {lines[0] if lines else type(error).__name__}"

    def backoff(self, attempt: int) -> float:
        return float(min(_MAX_BACKOFF, _FIRST_BACKOFF * 2**attempt))

    def _run(
        self,
        work: Work[T],
        *,
        write: bool,
        key: tuple[str, str] | None,
        retry_seconds: float | None,
    ) -> T:
        patience = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = self.clock.monotonic() + patience
        attempt = 0
        while True:
            try:
                self.migrate()
                with self._connection(write=write) as connection, connection.begin():
                    if key is not None and self.is_postgresql:
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(*key)}
                        )
                    return work(connection)
            except SQLAlchemyError as exc:
                if not self.is_unreachable(exc):
                    raise StateStoreError(self.describe(exc)) from None
                if self.clock.monotonic() >= deadline:
                    raise StateStoreUnreachableError(
                        f"{self.describe(exc)} (unreachable for {patience:g}s)"
                    ) from None
                self.retried += 1
                log.warning("%s; trying again", self.describe(exc))
                self.clock.sleep(self.backoff(attempt))
                attempt += 1

    def _connection(self, *, write: bool) -> Connection:
        connection = self.engine().connect()
        if write and not self.is_postgresql:
            return connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        return connection

    # -- the engine and the schema ------------------------------------------------------------

    def engine(self) -> Engine:
        with self._guard:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        if self.is_postgresql:
            return create_engine(
                self.url.sqlalchemy_url,
                pool_size=self.pool_size,
                max_overflow=self.pool_size * 2,
                connect_args={"connect_timeout": 10, "application_name": "reconciler"},
            )
        path = self.url.sqlite_path
        assert path is not None
        private_database(Path(path))
        # No pool: opening a SQLite file costs microseconds, and a pool would keep files
        # (and their locks) open in a process that is done with them.
        engine = create_engine(
            self.url.sqlalchemy_url,
            poolclass=NullPool,
            connect_args={"timeout": _SQLITE_BUSY_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_connected)
        event.listen(engine, "begin", _sqlite_begin)
        return engine

    def migrate(self) -> None:
        """Bring the schema up to date, once per process (cheap when it already is)."""
        if self._migrated:
            return
        from reconciler.state_store.migrations import upgrade

        with self._migrating:
            if not self._migrated:
                upgrade(self)
                self._migrated = True

    def dispose(self) -> None:
        """Close every pooled connection (tests, and a process that is done with the store)."""
        with self._guard:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            self._migrated = False


_OPEN: dict[str, StateDatabase] = {}
_OPEN_GUARD = threading.Lock()


def _sqlite_connected(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would not BEGIN before DDL nor let us choose
    # IMMEDIATE: turn it off and say BEGIN ourselves (SQLAlchemy's documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")
