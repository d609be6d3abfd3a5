"""The route table in SQLite, under the state folder.

The reconciler writes it, the gateway serves from it. Besides the live routes, each use case
keeps the routes the reconciler itself last wrote ("applied", like kubectl's last-applied
annotation): a difference between the two is drift, i.e. weights edited outside the
reconciler. Every write bumps a per-use-case generation so readers notice changes cheaply.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from reconciler.errors import StateStoreError
from reconciler.observe.state import Route, TrafficSnapshot
from reconciler.state_files import private_database

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS routes (
    use_case TEXT NOT NULL,
    version  TEXT NOT NULL,
    weight   INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100),
    shadow   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (use_case, version, shadow)
);
CREATE TABLE IF NOT EXISTS route_tables (
    use_case   TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    applied    TEXT,
    written_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class Writer(enum.StrEnum):
    RECONCILER = "reconciler"  # also records the routes as applied
    MANUAL = "manual"  # an operator or another tool; shows up as drift


def check_routes(routes: Sequence[Route]) -> None:
    """Raise StateStoreError unless live weights are whole percentages summing to 100."""
    seen: set[tuple[str, bool]] = set()
    for route in routes:
        if not 0 <= route.weight <= 100:
            raise StateStoreError(f"weight {route.weight} of version {route.version} not in 0..100")
        if (route.version, route.shadow) in seen:
            raise StateStoreError(f"version {route.version} is listed twice")
        seen.add((route.version, route.shadow))
    live = [r for r in routes if not r.shadow]
    total = sum(r.weight for r in live)
    if live and total != 100:
        raise StateStoreError(f"live weights must sum to 100; they sum to {total}")


class TrafficStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        if create:
            private_database(self.path)
        try:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot open the traffic store {self.path}: {exc}") from exc
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            if create:
                connection.execute("PRAGMA journal_mode = WAL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"the traffic store {self.path} has schema {version}, newer than this "
                    f"reconciler understands ({SCHEMA_VERSION}); upgrade the reconciler"
                )
            if create and version < SCHEMA_VERSION:
                connection.executescript(_SCHEMA)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            yield connection
        except sqlite3.Error as exc:
            raise StateStoreError(f"traffic store {self.path}: {exc}") from exc
        finally:
            connection.close()

    def snapshot(self, use_cases: Sequence[str]) -> Mapping[str, TrafficSnapshot]:
        """Routes of the named use cases; reading never creates the store."""
        if not self.path.exists():
            return MappingProxyType({name: TrafficSnapshot() for name in use_cases})
        with self._connect(create=False) as db:
            if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                return MappingProxyType({name: TrafficSnapshot() for name in use_cases})
            return MappingProxyType({name: self._read(db, name) for name in use_cases})

    def read(self, use_case: str) -> TrafficSnapshot:
        return self.snapshot([use_case])[use_case]

    def use_cases(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._connect(create=False) as db:
            rows = db.execute("SELECT use_case FROM route_tables ORDER BY use_case").fetchall()
        return [row[0] for row in rows]

    @staticmethod
    def _read(db: sqlite3.Connection, use_case: str) -> TrafficSnapshot:
        rows = db.execute(
            "SELECT version, weight, shadow FROM routes WHERE use_case = ? "
            "ORDER BY shadow, version",
            (use_case,),
        ).fetchall()
        meta = db.execute(
            "SELECT generation, applied FROM route_tables WHERE use_case = ?", (use_case,)
        ).fetchone()
        routes = tuple(Route(str(v), int(w), bool(s)) for v, w, s in rows)
        if meta is None:
            return TrafficSnapshot(routes=routes)
        generation, applied_json = meta
        applied = None
        if applied_json is not None:
            applied = tuple(
                Route(str(r["version"]), int(r["weight"]), bool(r.get("shadow", False)))
                for r in json.loads(applied_json)
            )
        return TrafficSnapshot(routes=routes, applied=applied, generation=int(generation))

    def write(
        self,
        use_case: str,
        routes: Sequence[Route],
        *,
        writer: Writer,
        expected_generation: int | None = None,
        now: datetime | None = None,
    ) -> int:
        """Replace a use case's routes atomically; returns the new generation.

        With `expected_generation`, the write is refused when someone else wrote in between
        (optimistic concurrency), so an executor never overwrites a change it has not seen.
        """
        check_routes(routes)
        stamp = (now or datetime.now(UTC)).isoformat()
        with self._connect(create=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT generation, applied FROM route_tables WHERE use_case = ?",
                    (use_case,),
                ).fetchone()
                generation, applied = (row[0], row[1]) if row else (0, None)
                if expected_generation is not None and generation != expected_generation:
                    raise StateStoreError(
                        f"routes of {use_case} changed meanwhile (generation {generation}, "
                        f"expected {expected_generation}); plan again"
                    )
                db.execute("DELETE FROM routes WHERE use_case = ?", (use_case,))
                db.executemany(
                    "INSERT INTO routes (use_case, version, weight, shadow) VALUES (?, ?, ?, ?)",
                    [(use_case, r.version, r.weight, int(r.shadow)) for r in routes],
                )
                if writer is Writer.RECONCILER:
                    applied = json.dumps([r.as_json() for r in routes])
                db.execute(
                    "INSERT INTO route_tables (use_case, generation, applied, written_by, "
                    "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(use_case) DO UPDATE SET "
                    "generation = excluded.generation, applied = excluded.applied, "
                    "written_by = excluded.written_by, updated_at = excluded.updated_at",
                    (use_case, generation + 1, applied, writer.value, stamp),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return int(generation) + 1
