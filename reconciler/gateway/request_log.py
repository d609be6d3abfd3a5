"""The request log: every exchange the gateway served, in SQLite (WAL) under the state folder.

This is the historical log that training reads, the prompt pool evaluation samples and the
data canary analysis aggregates. Writes never run on the event loop: records go onto a queue
that one writer thread drains in batches (one transaction per batch), so a burst of requests
costs one fsync, not one each. Feedback goes through the same queue, which orders it after
the record it refers to even when it arrives right after the response. Rows older than the
retention period are deleted by the writer about once an hour.

The writer must outlive any one record: a record it cannot store (text no encoder accepts, a
value SQLite refuses) is counted as failed and logged, and the rest of its batch is written.
The queue is bounded and nothing on the event loop ever waits for room in it: a record that
does not fit is dropped and counted, a job is refused at once (`RequestLogUnavailableError`).
`health()` tells a writer that stopped, or that has been stuck in one batch for longer than
`stall_seconds`, from one that keeps up, so /healthz can say so.
"""

from __future__ import annotations

import enum
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.redaction import redact_text, without_surrogates
from reconciler.state_files import private_database

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id                TEXT PRIMARY KEY,
    ts                REAL NOT NULL,
    use_case          TEXT NOT NULL,
    model_version     TEXT NOT NULL,
    shadow            INTEGER NOT NULL DEFAULT 0,
    mirror_of         TEXT,
    endpoint          TEXT NOT NULL,
    session_id        TEXT,
    route_generation  INTEGER NOT NULL,
    request_json      TEXT NOT NULL,
    output            TEXT,
    status            TEXT NOT NULL,
    error             TEXT,
    error_code        TEXT,
    latency_ms        REAL NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    guardrail         TEXT NOT NULL,
    violations        TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS requests_by_use_case_time ON requests (use_case, ts);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (ts);
CREATE TABLE IF NOT EXISTS feedback (
    response_id      TEXT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    rating           REAL,
    corrected_output TEXT,
    updated_at       REAL NOT NULL
);
"""
_INSERT = (
    "INSERT OR REPLACE INTO requests (id, ts, use_case, model_version, shadow, mirror_of, "
    "endpoint, session_id, route_generation, request_json, output, status, error, error_code, "
    "latency_ms, prompt_tokens, completion_tokens, guardrail, violations) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BATCH = 512
_RETENTION_EVERY_SECONDS = 3600.0
QUEUE_LIMIT = 100_000
# A batch is a few milliseconds of SQLite; a minute in one means the disk or a lock is stuck.
STALL_SECONDS = 60.0


class RequestStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"


@dataclass(frozen=True)
class LoggedRequest:
    id: str
    ts: float
    use_case: str
    model_version: str
    endpoint: str
    request: dict[str, Any]
    status: str
    latency_ms: float
    guardrail: str
    route_generation: int
    output: str | None = None
    error: str | None = None
    # Why it failed, as the gateway's error code: canary analysis counts only the codes that
    # are failures of the version itself (`log_queries.VERSION_FAILURE_CODES`).
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    violations: tuple[str, ...] = ()
    shadow: bool = False
    mirror_of: str | None = None
    session_id: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.ts,
            self.use_case,
            self.model_version,
            int(self.shadow),
            self.mirror_of,
            self.endpoint,
            self.session_id,
            self.route_generation,
            json.dumps(self.request, ensure_ascii=False),
            self.output,
            self.status,
            self.error,
            self.error_code,
            self.latency_ms,
            self.prompt_tokens,
            self.completion_tokens,
            self.guardrail,
            json.dumps(list(self.violations), ensure_ascii=False),
        )


@dataclass(frozen=True)
class Feedback:
    """A rating and/or correction of a response, or of one choice of it (`index`)."""

    response_id: str
    rating: float | None = None
    corrected_output: str | None = None
    index: int | None = None


class FeedbackTargetError(Exception):
    """The response exists but the feedback does not say which of its outputs it is for."""


class RequestLogUnavailableError(Exception):
    """The writer cannot take a job now: it is not running, or its queue is full."""


@dataclass(frozen=True)
class WriterHealth:
    """How the request-log writer is doing, as /healthz and /metrics report it."""

    healthy: bool
    reason: str | None
    backlog: int
    written: int
    failed: int
    dropped: int
    last_failure: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "reason": self.reason,
            "backlog": self.backlog,
            "written": self.written,
            "failed": self.failed,
            "dropped": self.dropped,
            "last_failure": self.last_failure,
        }


@contextmanager
def connect(path: Path, *, create: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to the request log; creates the file and schema when `create`."""
    if create:
        private_database(path)
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA busy_timeout = 30000")
        connection.execute("PRAGMA foreign_keys = ON")
        if create:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        # A reader may meet a log an older gateway wrote: its queries need today's columns.
        if version < SCHEMA_VERSION and (create or version > 0):
            _migrate(connection)
        yield connection
    finally:
        connection.close()


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring a log of an older schema up to date; a new file gets the whole schema."""
    connection.executescript(_SCHEMA)
    columns = {row[1] for row in connection.execute("PRAGMA table_info(requests)")}
    if "error_code" not in columns:  # schema 1: errors had no code
        connection.execute("ALTER TABLE requests ADD COLUMN error_code TEXT")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


_Job = Callable[[sqlite3.Connection], Any]


def _feedback_targets(feedback: Feedback, rows: list[str]) -> list[str]:
    """The logged outputs of one response that `feedback` is about."""
    response_id = feedback.response_id
    if feedback.index is not None:
        wanted = {f"{response_id}:{feedback.index}"}
        if feedback.index == 0:
            wanted.add(response_id)  # a single-output response is its own choice 0
        chosen = [row_id for row_id in rows if row_id in wanted]
        if not chosen:
            raise FeedbackTargetError(
                f"the response {response_id!r} has {len(rows)} choice(s); "
                f"there is no choice with index {feedback.index}"
            )
        return chosen
    if feedback.corrected_output is not None and len(rows) > 1:
        raise FeedbackTargetError(
            f"the response {response_id!r} has {len(rows)} choices: give `index` to say which "
            "choice the corrected_output is for"
        )
    return rows


class RequestLog:
    """Appends records and feedback from the event loop without blocking it."""

    def __init__(
        self,
        path: Path,
        *,
        retention_days: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        queue_limit: int = QUEUE_LIMIT,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._queue: queue.Queue[LoggedRequest | tuple[_Job, Future[Any]] | None] = queue.Queue(
            maxsize=queue_limit
        )
        self._thread: threading.Thread | None = None
        self._next_retention = 0.0
        # Set while the writer works on a batch: how long it has, tells a stuck writer.
        self._busy_since: float | None = None
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self.last_failure: str | None = None

    def start(self) -> None:
        with connect(self.path, create=True):
            pass
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.error("the request log writer did not take the stop signal; leaving it")
            thread.join(timeout)
        self._thread = None

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> WriterHealth:
        reason = None
        busy_since = self._busy_since
        if not self.running:
            reason = "the request log writer is not running; nothing is being logged"
        elif busy_since is not None and self._monotonic() - busy_since >= self.stall_seconds:
            reason = (
                f"the request log writer has been stuck for more than {self.stall_seconds:g}s "
                f"with {self.backlog} record(s) waiting"
            )
        return WriterHealth(
            healthy=reason is None,
            reason=reason,
            backlog=self.backlog,
            written=self.written,
            failed=self.failed,
            dropped=self.dropped,
            last_failure=self.last_failure,
        )

    def append(self, record: LoggedRequest) -> None:
        """Queue `record`; when the disk cannot keep up it is dropped and counted, not waited on."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def submit(self, job: _Job) -> Future[Any]:
        """Run `job(connection)` on the writer thread after everything queued before it.

        Never waits: when the writer is not running or its queue is full, the future holds
        `RequestLogUnavailableError` at once."""
        future: Future[Any] = Future()
        if not self.running:
            future.set_exception(
                RequestLogUnavailableError("the request log writer is not running")
            )
            return future
        try:
            self._queue.put_nowait((job, future))
        except queue.Full:
            self.dropped += 1
            future.set_exception(
                RequestLogUnavailableError(
                    f"the request log queue is full ({self.backlog} waiting)"
                )
            )
        return future

    def record_feedback(self, feedback: Feedback) -> Future[int]:
        """Store a rating and/or correction; the future holds how many outputs it went to (0:
        no such response) or raises `FeedbackTargetError`.

        A response with several outputs (a /v1/completions call with a list of prompts) is
        logged as one row per choice, `<id>:<index>`, and answered with `<id>`. Feedback may
        name `<id>` with the choice's `index`, name `<id>:<index>` directly, or name `<id>`
        alone: then a rating applies to every choice, while a correction, being the text
        for one prompt, is refused unless the response has a single output.
        """
        return self.submit(self.feedback_job(feedback))

    def feedback_job(self, feedback: Feedback) -> _Job:
        """The writer job that stores `feedback` (see `record_feedback`)."""
        now = self._clock()
        response_id = feedback.response_id

        def job(db: sqlite3.Connection) -> int:
            # `<id>:` .. `<id>;` is exactly the ids that start with `<id>:` (';' follows ':').
            rows = [
                row_id
                for (row_id,) in db.execute(
                    "SELECT id FROM requests WHERE shadow = 0 AND (id = ? OR (id >= ? AND id < ?)) "
                    "ORDER BY id",
                    (response_id, f"{response_id}:", f"{response_id};"),
                )
            ]
            if not rows:
                return 0
            targets = _feedback_targets(feedback, rows)
            db.executemany(
                "INSERT INTO feedback (response_id, rating, corrected_output, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(response_id) DO UPDATE SET "
                "rating = COALESCE(excluded.rating, rating), "
                "corrected_output = COALESCE(excluded.corrected_output, corrected_output), "
                "updated_at = excluded.updated_at",
                [(row_id, feedback.rating, feedback.corrected_output, now) for row_id in targets],
            )
            return len(targets)

        return job

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is written (tests, shutdown); unlike
        `submit`, waits for room in a full queue, so never call it on the event loop."""
        if not self.running:
            raise RequestLogUnavailableError("the request log writer is not running")
        future: Future[Any] = Future()
        try:
            self._queue.put((lambda db: None, future), timeout=timeout)
        except queue.Full:
            raise RequestLogUnavailableError(
                f"the request log queue stayed full for {timeout:g}s"
            ) from None
        future.result(timeout)

    def _run(self) -> None:
        with connect(self.path, create=True) as db:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                self._busy_since = self._monotonic()
                stop = False
                try:
                    stop = self._take_batch(db, item)
                    if not stop:
                        self._apply_retention(db)
                except Exception as exc:  # one bad batch must not end the log for good
                    self._failed(1, exc)
                    log.exception("the request log writer failed on a batch; going on")
                finally:
                    self._busy_since = None
                if stop:
                    return

    def _take_batch(
        self, db: sqlite3.Connection, first: LoggedRequest | tuple[_Job, Future[Any]]
    ) -> bool:
        """Write `first` and what else is queued, up to a batch; True when told to stop."""
        records: list[LoggedRequest] = []
        jobs: list[tuple[_Job, Future[Any]]] = []
        item = first
        stop = False
        while True:
            if isinstance(item, LoggedRequest):
                records.append(item)
            else:
                jobs.append(item)
            if len(records) + len(jobs) >= _BATCH:
                break
            try:
                following = self._queue.get_nowait()
            except queue.Empty:
                break
            if following is None:
                stop = True
                break
            item = following
        self._write(db, records, jobs)
        return stop

    def _failed(self, count: int, exc: BaseException) -> None:
        self.failed += count
        # The message may quote the offending text: shown redacted, and encodable.
        lines = without_surrogates(redact_text(str(exc))).strip().splitlines()
        self.last_failure = (
            f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        )

    def _write(
        self,
        db: sqlite3.Connection,
        records: list[LoggedRequest],
        jobs: list[tuple[_Job, Future[Any]]],
    ) -> None:
        # Records first: a job queued in the same batch may refer to any of them.
        if records:
            try:
                db.execute("BEGIN")
                db.executemany(_INSERT, [r.row() for r in records])
                db.execute("COMMIT")
                self.written += len(records)
            except Exception:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                self._write_one_by_one(db, records)
        for job, future in jobs:
            try:
                future.set_result(job(db))
            except Exception as exc:
                future.set_exception(exc)

    def _write_one_by_one(self, db: sqlite3.Connection, records: list[LoggedRequest]) -> None:
        """The batch failed: store every record that can be, and count the ones that cannot."""
        for record in records:
            try:
                db.execute(_INSERT, record.row())
            except (sqlite3.Error, ValueError, TypeError) as exc:
                # UnicodeEncodeError (a lone surrogate) is a ValueError.
                self._failed(1, exc)
                log.error(
                    "request log record %s of %s@%s could not be written (%s); it is not logged",
                    record.id,
                    record.use_case,
                    record.model_version,
                    self.last_failure,
                )
            else:
                self.written += 1

    def _apply_retention(self, db: sqlite3.Connection) -> None:
        now = self._clock()
        if now < self._next_retention:
            return
        self._next_retention = now + _RETENTION_EVERY_SECONDS
        cutoff = now - self.retention_days * 86_400
        try:
            deleted = db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
        except sqlite3.Error:
            log.exception("applying the request log retention failed")
            return
        if deleted:
            log.info("deleted %d request log rows older than %g days", deleted, self.retention_days)
