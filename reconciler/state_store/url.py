"""`RECONCILER_DATABASE_URL`: which backend holds the state, and how to show it safely.

Two schemes are accepted: `sqlite:///PATH` (one host; the default is `state.db` in the state
folder) and `postgresql://USER:PASSWORD@HOST:PORT/DATABASE` (shared by every host). The
PostgreSQL driver is psycopg 3 whatever the URL names, so `postgresql://` and
`postgresql+psycopg://` mean the same. The URL may carry a password: only `redacted` is ever
put into a message or a log line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from reconciler.errors import ReconcilerError
from reconciler.redaction import redact_uri
from reconciler.settings import DATABASE_URL_ENV


class Backend(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class DatabaseUrlError(ReconcilerError):
    """The database setting cannot be used (unknown scheme, no path, no database name)."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed state-store URL; `repr` and `redacted` never show credentials."""

    text: str = field(repr=False)
    backend: Backend
    sqlalchemy_url: URL = field(repr=False)
    redacted: str

    @classmethod
    def parse(cls, text: str) -> DatabaseUrl:
        redacted = redact_uri(text)
        try:
            url = make_url(text)
        except ArgumentError:
            raise DatabaseUrlError(
                f"{DATABASE_URL_ENV}={redacted} is not a database URL; use sqlite:///PATH "
                "or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            ) from None
        scheme = url.get_backend_name()
        if scheme == Backend.SQLITE.value:
            if not url.database or url.database == ":memory:":
                raise DatabaseUrlError(
                    f"{DATABASE_URL_ENV}={redacted} names no file: the state must outlive the "
                    "process (sqlite:///PATH)"
                )
            return cls(text, Backend.SQLITE, url.set(drivername="sqlite+pysqlite"), redacted)
        if scheme == Backend.POSTGRESQL.value:
            if not url.database:
                raise DatabaseUrlError(
                    f"{DATABASE_URL_ENV}={redacted} names no database "
                    "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
                )
            return cls(text, Backend.POSTGRESQL, url.set(drivername="postgresql+psycopg"), redacted)
        raise DatabaseUrlError(
            f"{DATABASE_URL_ENV}={redacted}: unsupported scheme {scheme!r}; "
            "use sqlite:///PATH or postgresql://…"
        )

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL (relative paths as SQLite reads them)."""
        if self.backend is not Backend.SQLITE or self.sqlalchemy_url.database is None:
            return None
        return Path(self.sqlalchemy_url.database)
