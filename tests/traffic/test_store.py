from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import StateStoreError
from reconciler.observe.state import Route
from reconciler.traffic.store import TrafficStore, Writer


@pytest.fixture
def store(tmp_path: Path) -> TrafficStore:
    return TrafficStore(tmp_path / "state" / "traffic.db")


def test_reading_a_missing_store_creates_nothing(store: TrafficStore) -> None:
    snapshot = store.snapshot(["npc"])
    assert snapshot["npc"].routes == ()
    assert not store.path.exists()


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


def test_a_newer_schema_is_refused(store: TrafficStore) -> None:
    store.write("npc", [Route("1", 100)], writer=Writer.RECONCILER)
    with sqlite3.connect(store.path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StateStoreError, match="newer than this reconciler"):
        store.read("npc")
