"""The journal: what the apply engine did, is doing, and was asked to do (SQLite).

- operations: one row per executed change (running / succeeded / failed / skipped), keyed by
  the desired-state digest, use case and change, for `status` and for resuming;
- rollouts: the progress of a progressive shift (the highest weight whose analysis passed,
  failed checks) so a crash or a pause resumes it without skipping an unjudged step;
- controls: manual gates (`pause`, `resume`, `abort`, `promote`) waiting to be obeyed;
- history: every champion change with its cause (commit, rollback, manual, drift).
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import StateStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    use_case TEXT NOT NULL, digest TEXT NOT NULL, action TEXT NOT NULL,
    change_index INTEGER NOT NULL,
    status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', result TEXT,
    started_at TEXT NOT NULL, finished_at TEXT
);
CREATE INDEX IF NOT EXISTS operations_by_use_case ON operations (use_case, id);
CREATE TABLE IF NOT EXISTS rollouts (
    use_case TEXT PRIMARY KEY, digest TEXT NOT NULL, candidate TEXT NOT NULL,
    champion TEXT NOT NULL,
    passed_weight INTEGER NOT NULL, failures INTEGER NOT NULL, started_at REAL NOT NULL,
    paused_reason TEXT
);
CREATE TABLE IF NOT EXISTS controls (
    use_case TEXT PRIMARY KEY, command TEXT NOT NULL, requested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, use_case TEXT NOT NULL, at TEXT NOT NULL,
    version TEXT NOT NULL, previous TEXT, cause TEXT NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
"""


class OperationStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Control(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    PROMOTE = "promote"


class Cause(enum.StrEnum):
    COMMIT = "commit"
    ROLLBACK = "rollback"
    MANUAL = "manual"
    DRIFT = "drift"


@dataclass(frozen=True)
class Operation:
    id: int
    use_case: str
    digest: str
    action: str
    change_index: int
    status: OperationStatus
    message: str
    result: dict[str, Any] | None
    started_at: str
    finished_at: str | None


@dataclass(frozen=True)
class RolloutProgress:
    use_case: str
    digest: str
    candidate: str
    champion: str
    # The highest canary weight whose analysis passed (0: none yet). A weight, not an index:
    # each plan lists the steps left from the live weights, so an index would point elsewhere.
    passed_weight: int
    failures: int
    started_at: float
    paused_reason: str | None = None


@dataclass(frozen=True)
class ChampionChange:
    use_case: str
    at: str
    version: str
    previous: str | None
    cause: Cause
    detail: str


def _migrate(db: sqlite3.Connection) -> None:
    """Journals written before progress was kept by weight: their step indexes cannot be
    trusted, so an in-flight rollout restarts from its first step (re-judging is safe)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(rollouts)")}
    if columns and "passed_weight" not in columns:
        db.execute("DROP TABLE rollouts")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot open the journal {self.path}: {exc}") from exc
        try:
            db.execute("PRAGMA journal_mode = WAL")
            _migrate(db)
            db.executescript(_SCHEMA)
            yield db
        except sqlite3.Error as exc:
            raise StateStoreError(f"journal {self.path}: {exc}") from exc
        finally:
            db.close()

    # -- operations --------------------------------------------------------------------------

    def start(self, use_case: str, digest: str, action: str, change_index: int) -> int:
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO operations (use_case, digest, action, change_index, status, "
                "started_at) VALUES (?, ?, ?, ?, ?, ?)",
                (use_case, digest, action, change_index, OperationStatus.RUNNING.value, _now()),
            )
            return int(cursor.lastrowid or 0)

    def finish(
        self,
        operation: int,
        status: OperationStatus,
        message: str,
        result: dict[str, Any] | None = None,
    ) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE operations SET status = ?, message = ?, result = ?, finished_at = ? "
                "WHERE id = ?",
                (status.value, message, json.dumps(result) if result else None, _now(), operation),
            )

    def last_operation(self, use_case: str) -> Operation | None:
        with self._db() as db:
            row = db.execute(
                "SELECT id, use_case, digest, action, change_index, status, message, result, "
                "started_at, finished_at FROM operations WHERE use_case = ? "
                "ORDER BY id DESC LIMIT 1",
                (use_case,),
            ).fetchone()
        if row is None:
            return None
        return Operation(
            id=row[0],
            use_case=row[1],
            digest=row[2],
            action=row[3],
            change_index=row[4],
            status=OperationStatus(row[5]),
            message=row[6],
            result=json.loads(row[7]) if row[7] else None,
            started_at=row[8],
            finished_at=row[9],
        )

    # -- rollouts ----------------------------------------------------------------------------

    def rollout(self, use_case: str) -> RolloutProgress | None:
        with self._db() as db:
            row = db.execute(
                "SELECT use_case, digest, candidate, champion, passed_weight, failures, "
                "started_at, paused_reason FROM rollouts WHERE use_case = ?",
                (use_case,),
            ).fetchone()
        return None if row is None else RolloutProgress(*row)

    def save_rollout(self, progress: RolloutProgress) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO rollouts (use_case, digest, candidate, champion, "
                "passed_weight, failures, started_at, paused_reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    progress.use_case,
                    progress.digest,
                    progress.candidate,
                    progress.champion,
                    progress.passed_weight,
                    progress.failures,
                    progress.started_at,
                    progress.paused_reason,
                ),
            )

    def clear_rollout(self, use_case: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM rollouts WHERE use_case = ?", (use_case,))

    # -- controls ----------------------------------------------------------------------------

    def request(self, use_case: str, control: Control) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO controls (use_case, command, requested_at) "
                "VALUES (?, ?, ?)",
                (use_case, control.value, _now()),
            )

    def pending_control(self, use_case: str) -> Control | None:
        with self._db() as db:
            row = db.execute(
                "SELECT command FROM controls WHERE use_case = ?", (use_case,)
            ).fetchone()
        return None if row is None else Control(row[0])

    def clear_control(self, use_case: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM controls WHERE use_case = ?", (use_case,))

    # -- history -----------------------------------------------------------------------------

    def record_champion(
        self, use_case: str, version: str, previous: str | None, cause: Cause, detail: str
    ) -> ChampionChange:
        change = ChampionChange(use_case, _now(), version, previous, cause, detail)
        with self._db() as db:
            db.execute(
                "INSERT INTO history (use_case, at, version, previous, cause, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (use_case, change.at, version, previous, cause.value, detail),
            )
        return change

    def history(self, use_case: str) -> list[ChampionChange]:
        with self._db() as db:
            rows = db.execute(
                "SELECT use_case, at, version, previous, cause, detail FROM history "
                "WHERE use_case = ? ORDER BY id",
                (use_case,),
            ).fetchall()
        return [ChampionChange(r[0], r[1], r[2], r[3], Cause(r[4]), r[5]) for r in rows]
