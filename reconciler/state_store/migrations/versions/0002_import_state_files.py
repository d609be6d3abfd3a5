"""Import the per-store SQLite files of 0.1 that lie beside a new SQLite state store.

Revision 0002, after 0001. Before one schema, the state folder held `traffic.db`,
`requests.db`, `journal.db` and `violations.db`, each with its own ad-hoc migrations; an
existing folder must keep its routes, log, rollouts and history. On SQLite their rows are
copied into the new tables, once (this revision runs once), column by column as far as the
old file had them: a request-log row of schema 1 has no error code, an operation of journal
schema 1 no pid. Rollouts of journal schema 1 kept only a passed weight, which the step
machine cannot resume from, and 0.1 itself dropped them on upgrade; so are they here (an
in-flight rollout starts again at its current weight). The old files are left as they were;
nothing reads them any more. On PostgreSQL there is nothing to import.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLES = {
    "traffic.db": ("routes", "route_tables"),
    "requests.db": ("requests", "feedback"),
    "journal.db": ("operations", "rollouts", "judgements", "controls", "history"),
    "violations.db": ("violations",),
}
_CHUNK = 5_000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    main = next(
        (row[2] for row in bind.exec_driver_sql("PRAGMA database_list") if row[1] == "main"), ""
    )
    if not main:
        return
    folder = Path(main).parent
    for file_name, tables in _TABLES.items():
        path = folder / file_name
        if path.is_file():
            _import(bind, path, tables)


def _import(bind: sa.Connection, path: Path, tables: tuple[str, ...]) -> None:
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as old:
        version = old.execute("PRAGMA user_version").fetchone()[0]
        present = {row[0] for row in old.execute("SELECT name FROM sqlite_master")}
        for table in tables:
            if table not in present or (table == "rollouts" and version < 2):
                continue
            new_columns = {c["name"] for c in sa.inspect(bind).get_columns(table)}
            columns = [
                row[1]
                for row in old.execute(f"PRAGMA table_info({table})")
                if row[1] in new_columns
            ]
            target = sa.table(table, *(sa.column(name) for name in columns))
            for chunk in _chunks(old, table, columns):
                bind.execute(target.insert(), chunk)


Rows = list[dict[str, object]]


def _chunks(old: sqlite3.Connection, table: str, columns: list[str]) -> Iterator[Rows]:
    cursor = old.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while rows := cursor.fetchmany(_CHUNK):
        yield [dict(zip(columns, row, strict=True)) for row in rows]


def downgrade() -> None:
    raise NotImplementedError("the state store's migrations only go forward")
