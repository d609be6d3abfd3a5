"""One schema, versioned migrations, both backends; a state folder of 0.1 keeps its state.

The 0.1 files are written here with the very statements 0.1 used (its four stores' schemas,
at their last versions and, for the request log and the journal, their first), then opened
by today's stores through the default SQLite URL: routes, the request log, rollouts,
judgements, controls, history and violations are all still there.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from reconciler.apply.journal import Cause, Journal, OperationStatus
from reconciler.clock import ManualClock
from reconciler.errors import StateStoreError
from reconciler.gateway.log_queries import read_exchanges, window_metrics
from reconciler.guardrails.store import ViolationStore
from reconciler.observe.state import Route
from reconciler.rollout.state import Control
from reconciler.settings import Settings
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase
from reconciler.state_store.migrations import current, head
from reconciler.state_store.url import DatabaseUrl, DatabaseUrlError
from reconciler.traffic.store import TrafficStore, Writer
from tests.rollout.test_machine import busy, new_rollout, rollout_spec

NOW = 1_800_000_000.0

TRAFFIC_V1 = """
CREATE TABLE routes (use_case TEXT NOT NULL, version TEXT NOT NULL,
    weight INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100), shadow INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (use_case, version, shadow));
CREATE TABLE route_tables (use_case TEXT PRIMARY KEY, generation INTEGER NOT NULL,
    applied TEXT, written_by TEXT NOT NULL, updated_at TEXT NOT NULL);
PRAGMA user_version = 1;
"""
# The request log's schema 1: errors had no code.
REQUESTS_V1 = """
CREATE TABLE requests (id TEXT PRIMARY KEY, ts REAL NOT NULL, use_case TEXT NOT NULL,
    model_version TEXT NOT NULL, shadow INTEGER NOT NULL DEFAULT 0, mirror_of TEXT,
    endpoint TEXT NOT NULL, session_id TEXT, route_generation INTEGER NOT NULL,
    request_json TEXT NOT NULL, output TEXT, status TEXT NOT NULL, error TEXT,
    latency_ms REAL NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0, guardrail TEXT NOT NULL,
    violations TEXT NOT NULL DEFAULT '[]');
CREATE TABLE feedback (response_id TEXT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    rating REAL, corrected_output TEXT, updated_at REAL NOT NULL);
PRAGMA user_version = 1;
"""
JOURNAL_V2 = """
CREATE TABLE operations (id INTEGER PRIMARY KEY AUTOINCREMENT, use_case TEXT NOT NULL,
    digest TEXT NOT NULL, action TEXT NOT NULL, change_index INTEGER NOT NULL,
    status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', result TEXT,
    started_at TEXT NOT NULL, finished_at TEXT, pid INTEGER, host TEXT);
CREATE TABLE rollouts (use_case TEXT PRIMARY KEY, digest TEXT NOT NULL, candidate TEXT NOT NULL,
    champion TEXT NOT NULL, phase TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE judgements (id INTEGER PRIMARY KEY AUTOINCREMENT, use_case TEXT NOT NULL,
    digest TEXT NOT NULL, candidate TEXT NOT NULL, champion TEXT NOT NULL, stage TEXT NOT NULL,
    final INTEGER NOT NULL, outcome TEXT NOT NULL, at REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE controls (use_case TEXT PRIMARY KEY, command TEXT NOT NULL,
    requested_at TEXT NOT NULL);
CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, use_case TEXT NOT NULL,
    at TEXT NOT NULL, version TEXT NOT NULL, previous TEXT, cause TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '');
PRAGMA user_version = 2;
"""
# The journal before the step machine: a rollout was a passed weight; no pid, no host.
JOURNAL_V1 = """
CREATE TABLE operations (id INTEGER PRIMARY KEY AUTOINCREMENT, use_case TEXT NOT NULL,
    digest TEXT NOT NULL, action TEXT NOT NULL, change_index INTEGER NOT NULL,
    status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', result TEXT,
    started_at TEXT NOT NULL, finished_at TEXT);
CREATE TABLE rollouts (use_case TEXT PRIMARY KEY, digest TEXT NOT NULL, candidate TEXT NOT NULL,
    champion TEXT NOT NULL, passed_weight INTEGER NOT NULL, failures INTEGER NOT NULL,
    started_at REAL NOT NULL, paused_reason TEXT);
CREATE TABLE controls (use_case TEXT PRIMARY KEY, command TEXT NOT NULL,
    requested_at TEXT NOT NULL);
CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, use_case TEXT NOT NULL,
    at TEXT NOT NULL, version TEXT NOT NULL, previous TEXT, cause TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '');
"""
# Violations before their source was kept.
VIOLATIONS_V1 = """
CREATE TABLE violations (id INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at TEXT NOT NULL,
    use_case TEXT NOT NULL, version TEXT NOT NULL, policy TEXT NOT NULL,
    check_name TEXT NOT NULL, category TEXT NOT NULL, severity TEXT NOT NULL,
    intervention TEXT NOT NULL, sample TEXT NOT NULL);
"""


def _old_file(path: Path, script: str, rows: dict[str, list[tuple[object, ...]]]) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(script)
        for table, values in rows.items():
            for row in values:
                marks = ", ".join("?" * len(row))
                db.execute(f"INSERT INTO {table} VALUES ({marks})", row)


def _request(id: str, version: str, status: str, output: str | None) -> tuple[object, ...]:
    chat = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    return (
        id,
        NOW,
        "npc",
        version,
        0,
        None,
        "chat",
        None,
        3,
        chat,
        output,
        status,
        None if output else "boom",
        12.0,
        5,
        7,
        "pass",
        "[]",
    )


@pytest.fixture
def state_folder_of_0_1(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    _old_file(
        state / "traffic.db",
        TRAFFIC_V1,
        {
            "routes": [("npc", "2", 90, 0), ("npc", "3", 10, 0), ("npc", "4", 100, 1)],
            "route_tables": [
                ("npc", 7, json.dumps([{"version": "2", "weight": 100}]), "manual", "t")
            ],
        },
    )
    _old_file(
        state / "requests.db",
        REQUESTS_V1,
        {
            "requests": [
                _request("a", "2", "ok", "Well met."),
                _request("b", "2", "ok", "Hello."),
                _request("c", "3", "error", None),
            ],
            "feedback": [("a", 0.9, "Well met, traveller.", NOW)],
        },
    )
    rollout = new_rollout(rollout_spec(), busy()).state
    _old_file(
        state / "journal.db",
        JOURNAL_V2,
        {
            "operations": [
                (
                    1,
                    "npc",
                    "sha256:d",
                    "shift",
                    0,
                    "progressing",
                    "baking",
                    None,
                    "t0",
                    "t1",
                    41,
                    "old-host",
                ),
            ],
            "rollouts": [
                (
                    rollout.use_case,
                    rollout.digest,
                    rollout.candidate,
                    rollout.champion,
                    rollout.phase.value,
                    json.dumps(rollout.as_json()),
                    "t1",
                ),
            ],
            "controls": [(rollout.use_case, "pause", "t2")],
            "history": [(1, "npc", "t0", "2", "1", "commit", "commit abc")],
        },
    )
    _old_file(
        state / "violations.db",
        VIOLATIONS_V1,
        {
            "violations": [
                (
                    1,
                    "2026-01-01T00:00:00+00:00",
                    "npc",
                    "2",
                    "player-safety",
                    "personal-data",
                    "pii",
                    "high",
                    "block_output",
                    "mail [EMAIL]",
                ),
            ]
        },
    )
    return state


def test_a_state_folder_of_0_1_keeps_everything(state_folder_of_0_1: Path) -> None:
    state = state_folder_of_0_1
    settings = Settings.from_environment({"RECONCILER_STATE_DIR": str(state)}, cwd=state.parent)
    database = StateDatabase(settings.database)
    try:
        snapshot = TrafficStore(database).read("npc")
        assert snapshot.generation == 7 and snapshot.drifted
        assert Route("4", 100, shadow=True) in snapshot.routes
        assert snapshot.weight_of("2") == 90

        windows = window_metrics(database, "npc", since=NOW - 1)
        # A row of schema 1 has no error code: its failure counts against the version.
        assert (windows["2"].requests, windows["3"].errors) == (2, 1)
        (rated,) = [e for e in read_exchanges(database, "npc", since=0) if e.id == "a"]
        assert rated.best_output == "Well met, traveller."

        journal = Journal(database)
        rollout = journal.rollout("npc")
        assert rollout == new_rollout(rollout_spec(), busy()).state
        assert journal.pending_control("npc") is Control.PAUSE
        operation = journal.last_operation("npc")
        assert operation is not None and operation.status is OperationStatus.PROGRESSING
        assert (operation.pid, operation.host) == (41, "old-host")
        assert [c.cause for c in journal.history("npc")] == [Cause.COMMIT]
        # New rows follow the old ones, never reusing their ids.
        assert journal.start("npc", "sha256:d", "promote", 1) == 2

        (violation,) = ViolationStore(database).violations("npc")
        assert violation.sample == "mail [EMAIL]"
        assert database.read(current) == (head(),)
    finally:
        database.dispose()


def test_a_journal_from_before_the_step_machine_drops_its_rollouts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _old_file(
        state / "journal.db",
        JOURNAL_V1,
        {
            "operations": [(1, "npc", "sha256:d", "shift", 0, "failed", "x", None, "t0", "t1")],
            "rollouts": [("npc", "sha256:d", "3", "2", 25, 0, NOW, None)],
        },
    )
    database = StateDatabase(f"sqlite:///{state / 'state.db'}")
    try:
        journal = Journal(database)
        # A passed weight is no state the machine can resume: it starts the step again.
        assert journal.rollout("npc") is None
        operation = journal.last_operation("npc")
        assert operation is not None and operation.pid is None and operation.message == "x"
    finally:
        database.dispose()


def _differences(db: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(db), schema.metadata))


def test_the_migrations_build_exactly_the_schema_the_stores_use(
    state_database: StateDatabase,
) -> None:
    assert state_database.read(current) == (head(),)
    assert state_database.read(_differences) == []


def test_processes_starting_together_migrate_once(state_url: str) -> None:
    opened = [StateDatabase(state_url) for _ in range(4)]
    start = threading.Barrier(len(opened))
    failures: list[BaseException] = []

    def first_use(database: StateDatabase) -> None:
        start.wait()
        try:
            TrafficStore(database).write("npc", [Route("1", 100)], writer=Writer.MANUAL)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first_use, args=(d,)) for d in opened]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert TrafficStore(opened[0]).read("npc").generation == len(opened)
    for database in opened:
        database.dispose()


def test_credentials_never_appear_in_what_is_shown(postgres_url: str) -> None:
    password = postgres_url.split(":")[2].split("@", maxsplit=1)[0]
    wrong = postgres_url.replace(f":{password}@", ":not-the-password-4f1e@")
    clock = ManualClock()
    database = StateDatabase(wrong, clock=clock)  # waits out an outage, by default
    assert password not in repr(database) and "not-the-password" not in repr(database)
    with pytest.raises(StateStoreError) as refused:
        TrafficStore(database).read("npc")
    assert "password authentication failed" in str(refused.value)
    # A refusal is no outage: reported at once, not retried for half a minute.
    assert database.retried == 0 and clock.slept == []
    assert "unreachable" not in str(refused.value)
    assert "not-the-password-4f1e" not in str(refused.value)
    assert "***@127.0.0.1" in str(refused.value)
    assert password not in repr(DatabaseUrl.parse(postgres_url))
    with pytest.raises(DatabaseUrlError) as unknown:
        DatabaseUrl.parse("mysql://root:hunter2@db/state")
    assert "hunter2" not in str(unknown.value) and "sqlite:///PATH" in str(unknown.value)
