"""The journal: what the apply engine did, is doing, and was asked to do (SQLite).

- operations: one row per executed change (running / succeeded / failed / skipped /
  interrupted), keyed by the desired-state digest, use case and change, with the pid and host
  of the process that ran it, so a row left `running` by a process that died is recognised;
- rollouts: each use case's latest rollout state (the step machine's, as JSON), saved after
  every step so a crash or a pause resumes it;
- judgements: every analysis a rollout made, with each metric's value, threshold, sample size
  and verdict - saved in the same transaction as the state that acted on it, so no stage is
  ever passed without its judgement on record;
- controls: operator requests (`pause`, `resume`, `abort`, `promote`) waiting to be obeyed;
- history: every champion change with its cause (commit, rollback, manual, drift).

Times come from the injected clock.
"""

from __future__ import annotations

import enum
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.clock import SYSTEM_CLOCK, Clock, iso
from reconciler.errors import StateStoreError
from reconciler.rollout.state import Control, Judgement, PromotionBasis, RolloutState
from reconciler.state_files import private_database

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    use_case TEXT NOT NULL, digest TEXT NOT NULL, action TEXT NOT NULL,
    change_index INTEGER NOT NULL,
    status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', result TEXT,
    started_at TEXT NOT NULL, finished_at TEXT,
    pid INTEGER, host TEXT
);
CREATE INDEX IF NOT EXISTS operations_by_use_case ON operations (use_case, id);
CREATE TABLE IF NOT EXISTS rollouts (
    use_case TEXT PRIMARY KEY, digest TEXT NOT NULL, candidate TEXT NOT NULL,
    champion TEXT NOT NULL, phase TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS judgements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    use_case TEXT NOT NULL, digest TEXT NOT NULL, candidate TEXT NOT NULL,
    champion TEXT NOT NULL, stage TEXT NOT NULL, final INTEGER NOT NULL,
    outcome TEXT NOT NULL, at REAL NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS judgements_by_use_case ON judgements (use_case, id);
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
    SUSPENDED = "suspended"  # waits for traffic or an operator; the next reconcile goes on
    PROGRESSING = "progressing"  # a rollout advanced one step; the controller goes on
    INTERRUPTED = "interrupted"  # its process died (the lock was free, the pid gone)


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
    pid: int | None = None
    host: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "status": self.status.value,
            "message": self.message,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class ChampionChange:
    use_case: str
    at: str
    version: str
    previous: str | None
    cause: Cause
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "at": self.at,
            "version": self.version,
            "previous": self.previous,
            "cause": self.cause.value,
            "detail": self.detail,
        }


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateStoreError(
            f"the journal {path} has schema {version}, newer than this reconciler understands "
            f"({SCHEMA_VERSION}); upgrade the reconciler"
        )
    if version == SCHEMA_VERSION:
        return
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.execute("BEGIN IMMEDIATE")
    try:
        # Version 1 kept rollouts as a passed weight, which the step machine cannot resume
        # from: an in-flight rollout starts again at its current weight (re-judging is safe).
        if "rollouts" in tables:
            db.execute("DROP TABLE rollouts")
        if "operations" in tables:
            columns = {row[1] for row in db.execute("PRAGMA table_info(operations)")}
            for column, kind in (("pid", "INTEGER"), ("host", "TEXT")):
                if column not in columns:
                    db.execute(f"ALTER TABLE operations ADD COLUMN {column} {kind}")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


_OPERATION_COLUMNS = (
    "id, use_case, digest, action, change_index, status, message, result, started_at, "
    "finished_at, pid, host"
)


def _operation(row: tuple[Any, ...]) -> Operation:
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
        pid=row[10],
        host=row[11],
    )


class Journal:
    def __init__(self, path: Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.clock = clock
        self._private = False

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self._private:
            private_database(self.path)
            self._private = True
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot open the journal {self.path}: {exc}") from exc
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA journal_mode = WAL")
            _migrate(db, self.path)
            yield db
        except sqlite3.Error as exc:
            raise StateStoreError(f"journal {self.path}: {exc}") from exc
        finally:
            db.close()

    def _now(self) -> str:
        return iso(self.clock)

    # -- operations --------------------------------------------------------------------------

    def start(self, use_case: str, digest: str, action: str, change_index: int) -> int:
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO operations (use_case, digest, action, change_index, status, "
                "started_at, pid, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    use_case,
                    digest,
                    action,
                    change_index,
                    OperationStatus.RUNNING.value,
                    self._now(),
                    os.getpid(),
                    socket.gethostname(),
                ),
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
                (
                    status.value,
                    message,
                    json.dumps(result) if result else None,
                    self._now(),
                    operation,
                ),
            )

    def last_operation(self, use_case: str, *, digest: str | None = None) -> Operation | None:
        query = f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE use_case = ?"
        params: list[Any] = [use_case]
        if digest is not None:
            query += " AND digest = ?"
            params.append(digest)
        with self._db() as db:
            row = db.execute(query + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return None if row is None else _operation(row)

    def interrupt_orphans(self, use_case: str) -> int:
        """Mark `running` rows of `use_case` interrupted. Call it holding the use case's lock:
        then no live process can be running them, whatever their rows say."""
        with self._db() as db:
            cursor = db.execute(
                "UPDATE operations SET status = ?, finished_at = ?, message = CASE "
                "WHEN message = '' THEN 'its process stopped before it finished' "
                "ELSE message END WHERE use_case = ? AND status = ?",
                (
                    OperationStatus.INTERRUPTED.value,
                    self._now(),
                    use_case,
                    OperationStatus.RUNNING.value,
                ),
            )
            return cursor.rowcount

    # -- rollouts ----------------------------------------------------------------------------

    def rollout(self, use_case: str) -> RolloutState | None:
        with self._db() as db:
            row = db.execute(
                "SELECT state FROM rollouts WHERE use_case = ?", (use_case,)
            ).fetchone()
        return None if row is None else RolloutState.from_json(json.loads(row[0]))

    def save_rollout(self, state: RolloutState, judgement: Judgement | None = None) -> None:
        """The rollout's new state and the judgement it made, in one transaction."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO rollouts (use_case, digest, candidate, champion, "
                    "phase, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        state.use_case,
                        state.digest,
                        state.candidate,
                        state.champion,
                        state.phase.value,
                        json.dumps(state.as_json()),
                        self._now(),
                    ),
                )
                if judgement is not None:
                    db.execute(
                        "INSERT INTO judgements (use_case, digest, candidate, champion, stage, "
                        "final, outcome, at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            judgement.use_case,
                            judgement.digest,
                            judgement.candidate,
                            judgement.champion,
                            judgement.stage,
                            int(judgement.final),
                            judgement.outcome.value,
                            judgement.window_end,
                            json.dumps(judgement.as_json()),
                        ),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def judgements(self, use_case: str) -> list[Judgement]:
        with self._db() as db:
            rows = db.execute(
                "SELECT body FROM judgements WHERE use_case = ? ORDER BY id", (use_case,)
            ).fetchall()
        return [Judgement.from_json(json.loads(row[0])) for row in rows]

    def promotion_basis(
        self, use_case: str, *, digest: str, candidate: str, champion: str
    ) -> PromotionBasis | None:
        """What earns promoting `candidate` over `champion` for this desired state: a passed
        analysis at the final stage, or an operator's promote of this very rollout."""
        with self._db() as db:
            passed = db.execute(
                "SELECT 1 FROM judgements WHERE use_case = ? AND digest = ? AND candidate = ? "
                "AND champion = ? AND final = 1 AND outcome = 'Successful' LIMIT 1",
                (use_case, digest, candidate, champion),
            ).fetchone()
        if passed:
            return PromotionBasis.ANALYSIS
        state = self.rollout(use_case)
        if (
            state is not None
            and state.same_rollout(digest=digest, candidate=candidate, champion=champion)
            and state.promoted_by is PromotionBasis.OPERATOR
        ):
            return PromotionBasis.OPERATOR
        return None

    # -- controls ----------------------------------------------------------------------------

    def request(self, use_case: str, control: Control) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO controls (use_case, command, requested_at) "
                "VALUES (?, ?, ?)",
                (use_case, control.value, self._now()),
            )

    def pending_control(self, use_case: str) -> Control | None:
        with self._db() as db:
            row = db.execute(
                "SELECT command FROM controls WHERE use_case = ?", (use_case,)
            ).fetchone()
        return None if row is None else Control(row[0])

    def clear_control(self, use_case: str, control: Control | None = None) -> None:
        """Forget the pending control; with `control`, only if it is still that one (a newer
        request that arrived meanwhile is kept)."""
        with self._db() as db:
            if control is None:
                db.execute("DELETE FROM controls WHERE use_case = ?", (use_case,))
            else:
                db.execute(
                    "DELETE FROM controls WHERE use_case = ? AND command = ?",
                    (use_case, control.value),
                )

    # -- history -----------------------------------------------------------------------------

    def record_champion(
        self, use_case: str, version: str, previous: str | None, cause: Cause, detail: str
    ) -> ChampionChange:
        change = ChampionChange(use_case, self._now(), version, previous, cause, detail)
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
