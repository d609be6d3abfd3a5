"""Versioned, forward-only migrations of the state store's schema (alembic), both backends.

`upgrade` runs in one transaction that holds the schema's lock (SQLite's write lock, or a
PostgreSQL advisory lock), so processes that start together migrate once and the others
find the schema done. A database stamped with a revision this reconciler does not know was
migrated by a newer one: it is refused, never "repaired". Revisions only go forward; there
is no downgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text

from reconciler.errors import StateStoreError

if TYPE_CHECKING:
    from reconciler.state_store.database import StateDatabase

HERE = Path(__file__).resolve().parent
# The per-store files of 0.1 that revision 0002 imports from the folder of a SQLite store.
FILES_OF_0_1 = ("traffic.db", "requests.db", "journal.db", "violations.db")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this reconciler knows."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def current(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def upgrade(database: StateDatabase) -> None:
    """Bring `database` to the newest revision; refuse one newer than that."""
    from reconciler.state_store.database import lock_key

    script = ScriptDirectory.from_config(_config())
    newest = script.get_current_head()
    with database.connect() as connection, connection.begin():
        if database.is_postgresql:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("schema", "upgrade")}
            )
        revisions = current(connection)
        for revision in revisions:
            try:
                script.get_revision(revision)
            except CommandError:
                raise StateStoreError(
                    f"the state store {database.redacted} has schema revision {revision}, "
                    f"newer than this reconciler understands (newest known: {newest}); "
                    "upgrade the reconciler"
                ) from None
        if revisions == (newest,):
            return
        command.upgrade(_config(connection), "head")
