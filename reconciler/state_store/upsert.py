"""INSERT … ON CONFLICT for the backend at hand: the same statement shape on SQLite and
PostgreSQL, built by SQLAlchemy's dialect constructs rather than SQL written twice."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import ColumnClause

Excluded = Any  # the proposed row's columns (`excluded.<name>`)


def _insert(db: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if db.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(
    db: Connection,
    table: Table,
    values: Mapping[str, Any] | None = None,
    *,
    key: Sequence[str],
    set_: Callable[[Excluded], Mapping[str, ColumnClause[Any] | Any]] | None = None,
) -> Any:
    """Insert `values` (or, given at execution, many rows); on a clash of `key`, update the
    row: with `set_(excluded)`, else every other column from the proposed row."""
    statement = _insert(db, table)
    if values is not None:
        statement = statement.values(dict(values))
    excluded = statement.excluded
    updates = (
        set_(excluded)
        if set_ is not None
        else {c.name: excluded[c.name] for c in table.columns if c.name not in key}
    )
    return statement.on_conflict_do_update(index_elements=list(key), set_=dict(updates))


def insert_unless_present(db: Connection, table: Table) -> Any:
    """Insert rows (given at execution); a row that clashes with a unique index is skipped."""
    return _insert(db, table).on_conflict_do_nothing()
