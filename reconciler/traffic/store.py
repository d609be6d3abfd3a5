"""The route table, in the state store (SQLite on one host, PostgreSQL shared by several).

The reconciler writes it, the gateway serves from it. Besides the live routes, each use case
keeps the routes the reconciler itself last wrote ("applied", like kubectl's last-applied
annotation): a difference between the two is drift, i.e. weights edited outside the
reconciler. Every write bumps a per-use-case generation so readers notice changes cheaply.

On PostgreSQL, writers of one use case take turns (a transaction-scoped advisory lock), and
each write sends a NOTIFY once it commits: `watch` hands gateway replicas those notices so a
route change reaches every one of them at once; they poll as well, in case a notice is lost.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from sqlalchemy import Connection, delete, insert, select, text

from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.errors import StateStoreError
from reconciler.observe.state import Route, TrafficSnapshot
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase
from reconciler.state_store.route_notices import RouteNotices
from reconciler.state_store.upsert import upsert

ROUTES_CHANNEL = "reconciler_routes"


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
    def __init__(self, database: StateDatabase, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.database = database
        self.clock = clock

    def snapshot(self, use_cases: Sequence[str]) -> Mapping[str, TrafficSnapshot]:
        """Routes of the named use cases, in one transaction; reading never creates a store."""
        if not self.database.exists():
            return MappingProxyType({name: TrafficSnapshot() for name in use_cases})

        def read(db: Connection) -> Mapping[str, TrafficSnapshot]:
            return MappingProxyType(_read(db, list(use_cases)))

        return self.database.read(read)

    def read(self, use_case: str) -> TrafficSnapshot:
        return self.snapshot([use_case])[use_case]

    def use_cases(self) -> list[str]:
        if not self.database.exists():
            return []
        query = select(schema.route_tables.c.use_case).order_by(schema.route_tables.c.use_case)
        return self.database.read(lambda db: [str(name) for name in db.scalars(query)])

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
        stamp = (now or datetime.fromtimestamp(self.clock.now(), UTC)).isoformat()

        def write(db: Connection) -> int:
            row = db.execute(
                select(schema.route_tables.c.generation, schema.route_tables.c.applied).where(
                    schema.route_tables.c.use_case == use_case
                )
            ).first()
            generation, applied = (int(row[0]), row[1]) if row else (0, None)
            if expected_generation is not None and generation != expected_generation:
                raise StateStoreError(
                    f"routes of {use_case} changed meanwhile (generation {generation}, "
                    f"expected {expected_generation}); plan again"
                )
            db.execute(delete(schema.routes).where(schema.routes.c.use_case == use_case))
            if routes:
                db.execute(
                    insert(schema.routes),
                    [
                        {"use_case": use_case, "version": r.version, "weight": r.weight,
                         "shadow": r.shadow}
                        for r in routes
                    ],
                )  # fmt: skip
            if writer is Writer.RECONCILER:
                applied = json.dumps([r.as_json() for r in routes])
            db.execute(
                upsert(
                    db,
                    schema.route_tables,
                    {
                        "use_case": use_case,
                        "generation": generation + 1,
                        "applied": applied,
                        "written_by": writer.value,
                        "updated_at": stamp,
                    },
                    key=("use_case",),
                )
            )
            if self.database.is_postgresql:
                # Delivered when (and only if) this transaction commits.
                db.execute(
                    text("SELECT pg_notify(:channel, :use_case)"),
                    {"channel": ROUTES_CHANNEL, "use_case": use_case},
                )
            return generation + 1

        return self.database.write(write, serialise_on=("routes", use_case))

    def watch(self, on_change: Callable[[str], None]) -> RouteNotices | None:
        """Call `on_change(use_case)` soon after any process changes a use case's routes
        (`"*"`: maybe several, after a lost connection). PostgreSQL only: on SQLite, with
        every reader on the same host, readers poll. Stop the returned listener when done."""
        if not self.database.is_postgresql:
            return None
        notices = RouteNotices(self.database, ROUTES_CHANNEL, on_change)
        notices.start()
        return notices


def _read(db: Connection, use_cases: list[str]) -> dict[str, TrafficSnapshot]:
    table = schema.routes
    found: dict[str, list[Route]] = {name: [] for name in use_cases}
    rows = db.execute(
        select(table.c.use_case, table.c.version, table.c.weight, table.c.shadow)
        .where(table.c.use_case.in_(use_cases))
        .order_by(table.c.use_case, table.c.shadow, table.c.version)
    )
    for use_case, version, weight, shadow in rows:
        found[use_case].append(Route(str(version), int(weight), bool(shadow)))
    meta = {
        use_case: (int(generation), applied)
        for use_case, generation, applied in db.execute(
            select(
                schema.route_tables.c.use_case,
                schema.route_tables.c.generation,
                schema.route_tables.c.applied,
            ).where(schema.route_tables.c.use_case.in_(use_cases))
        )
    }
    snapshots = {}
    for name in use_cases:
        live = tuple(found[name])
        if name not in meta:
            snapshots[name] = TrafficSnapshot(routes=live)
            continue
        generation, applied_json = meta[name]
        applied = None
        if applied_json is not None:
            applied = tuple(
                Route(str(r["version"]), int(r["weight"]), bool(r.get("shadow", False)))
                for r in json.loads(applied_json)
            )
        snapshots[name] = TrafficSnapshot(routes=live, applied=applied, generation=generation)
    return snapshots
