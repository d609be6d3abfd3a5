"""The route table on both backends: SQLite in the state folder, and a real PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from reconciler.errors import StateStoreError
from reconciler.observe.state import Route
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.store import TrafficStore, Writer


@pytest.fixture
def store(state_database: StateDatabase) -> TrafficStore:
    return TrafficStore(state_database)


def test_reading_a_missing_sqlite_store_creates_nothing(tmp_path: Path) -> None:
    database = StateDatabase(f"sqlite:///{tmp_path / 'state' / 'state.db'}")
    snapshot = TrafficStore(database).snapshot(["npc"])
    assert snapshot["npc"].routes == ()
    assert not (tmp_path / "state" / "state.db").exists()


def test_reconciler_write_is_recorded_as_applied(store: TrafficStore) -> None:
    generation = store.write("npc", [Route("3", 90), Route("4", 10)], writer=Writer.RECONCILER)
    snapshot = store.read("npc")
    assert generation == 1 and snapshot.generation == 1
    assert snapshot.routes == (Route("3", 90), Route("4", 10))
    assert snapshot.applied == snapshot.routes
    assert snapshot.drifted is False


def test_manual_write_shows_as_drift(store: TrafficStore) -> None:
    store.write("npc", [Route("3", 100)], writer=Writer.RECONCILER)
    store.write("npc", [Route("3", 50), Route("4", 50)], writer=Writer.MANUAL)
    snapshot = store.read("npc")
    assert snapshot.generation == 2
    assert snapshot.applied == (Route("3", 100),)
    assert snapshot.drifted is True


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([Route("1", 60), Route("2", 30)], "sum to 90"),
        ([Route("1", 101)], "not in 0..100"),
        ([Route("1", 50), Route("1", 50)], "listed twice"),
    ],
)
def test_invalid_routes_are_refused_and_nothing_is_written(
    store: TrafficStore, routes: list[Route], message: str
) -> None:
    store.write("npc", [Route("1", 100)], writer=Writer.RECONCILER)
    with pytest.raises(StateStoreError, match=message):
        store.write("npc", routes, writer=Writer.RECONCILER)
    assert store.read("npc").routes == (Route("1", 100),)


def test_shadow_routes_do_not_count_towards_weights(store: TrafficStore) -> None:
    store.write("npc", [Route("1", 100), Route("2", 0, shadow=True)], writer=Writer.RECONCILER)
    snapshot = store.read("npc")
    assert snapshot.weight_of("1") == 100 and snapshot.weight_of("2") == 0
    assert Route("2", 0, shadow=True) in snapshot.routes


def test_expected_generation_guards_against_lost_updates(store: TrafficStore) -> None:
    store.write("npc", [Route("1", 100)], writer=Writer.RECONCILER)
    store.write("npc", [Route("2", 100)], writer=Writer.MANUAL)
    with pytest.raises(StateStoreError, match="changed meanwhile"):
        store.write("npc", [Route("3", 100)], writer=Writer.RECONCILER, expected_generation=1)
    assert store.read("npc").routes == (Route("2", 100),)


def test_concurrent_writers_each_get_their_own_generation(store: TrafficStore) -> None:
    # Eight threads write at once; on PostgreSQL they take turns on the use case's
    # transaction lock, on SQLite on the write lock: no generation is handed out twice.
    store.write("npc", [Route("1", 100)], writer=Writer.RECONCILER)
    generations: list[int] = []
    start = threading.Barrier(8)

    def write(version: int) -> None:
        start.wait()
        generations.append(store.write("npc", [Route(str(version), 100)], writer=Writer.MANUAL))

    threads = [threading.Thread(target=write, args=(v,)) for v in range(2, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(generations) == list(range(2, 10))
    assert store.read("npc").generation == 9


def test_a_newer_schema_is_refused(store: TrafficStore, state_url: str) -> None:
    store.write("npc", [Route("1", 100)], writer=Writer.RECONCILER)
    store.database.write(
        lambda db: db.execute(text("UPDATE alembic_version SET version_num = '9001'"))
    )
    later = StateDatabase(state_url)  # another process, started after the upgrade
    with pytest.raises(StateStoreError, match="revision 9001, newer than this reconciler"):
        TrafficStore(later).read("npc")
    later.dispose()
