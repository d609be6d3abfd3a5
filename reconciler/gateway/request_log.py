"""The request log: every exchange the gateway served, in the state store's `requests` table.

This is the historical log that training reads, the prompt pool evaluation samples and the
data canary analysis aggregates. With PostgreSQL every gateway replica writes into the same
table, so an analysis window counts what all of them served. Writes never run on the event
loop: records go onto a queue that one writer thread drains in batches (one transaction per
batch), so a burst of requests costs one commit, not one each. Feedback goes through the same
queue, which orders it after the record it refers to even when it arrives right after the
response. Rows older than the retention period are deleted by the writer about once an hour.

The writer must outlive any one record: a record it cannot store (text no encoder accepts, a
value the database refuses) is counted as failed and logged, and the rest of its batch is
written. A database it cannot reach is waited for - the batch is kept and tried again with
backoff - while the bounded queue takes what arrives meanwhile; nothing on the event loop
ever waits: a record that does not fit is dropped and counted, a job is refused at once
(`RequestLogUnavailableError`). `health()` tells a writer that stopped, or that has been stuck
in one batch for longer than `stall_seconds`, from one that keeps up, so /healthz can say so.
"""

from __future__ import annotations

import enum
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select

from reconciler.errors import StateStoreError
from reconciler.redaction import redact_text, without_surrogates
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase, StateStoreUnreachableError
from reconciler.state_store.upsert import upsert

log = logging.getLogger(__name__)

_BATCH = 512
_RETENTION_EVERY_SECONDS = 3600.0
QUEUE_LIMIT = 100_000
# A batch is milliseconds; a minute in one means the disk or a lock is stuck, or the
# database has been unreachable that long.
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

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "use_case": self.use_case,
            "model_version": self.model_version,
            "shadow": self.shadow,
            "mirror_of": self.mirror_of,
            "endpoint": self.endpoint,
            "session_id": self.session_id,
            "route_generation": self.route_generation,
            "request_json": json.dumps(self.request, ensure_ascii=False),
            "output": self.output,
            "status": self.status,
            "error": self.error,
            "error_code": self.error_code,
            "latency_ms": self.latency_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "guardrail": self.guardrail,
            "violations": json.dumps(list(self.violations), ensure_ascii=False),
        }


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


_Job = Callable[[Connection], Any]


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
        database: StateDatabase,
        *,
        retention_days: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        queue_limit: int = QUEUE_LIMIT,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.database = database
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
        # Set by `stop`: a writer waiting for an unreachable database gives up its batch.
        self._stopping = threading.Event()

    def start(self) -> None:
        self.database.migrate()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
                self._stopping.set()
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

        def job(db: Connection) -> int:
            # `<id>:` .. `<id>;` is exactly the ids that start with `<id>:` (';' follows ':'
            # in byte order, which the id column sorts by on both backends).
            ids = schema.requests.c.id
            rows = list(
                db.scalars(
                    select(ids)
                    .where(
                        schema.requests.c.shadow.is_(False),
                        (ids == response_id)
                        | ((ids >= f"{response_id}:") & (ids < f"{response_id};")),
                    )
                    .order_by(ids)
                )
            )
            if not rows:
                return 0
            targets = _feedback_targets(feedback, rows)
            table = schema.feedback
            db.execute(
                upsert(
                    db,
                    table,
                    key=("response_id",),
                    set_=lambda proposed: {
                        "rating": func.coalesce(proposed.rating, table.c.rating),
                        "corrected_output": func.coalesce(
                            proposed.corrected_output, table.c.corrected_output
                        ),
                        "updated_at": proposed.updated_at,
                    },
                ),
                [
                    {
                        "response_id": row_id,
                        "rating": feedback.rating,
                        "corrected_output": feedback.corrected_output,
                        "updated_at": now,
                    }
                    for row_id in targets
                ],
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
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._busy_since = self._monotonic()
            stop = False
            try:
                stop = self._take_batch(item)
                if not stop:
                    self._apply_retention()
            except Exception as exc:  # one bad batch must not end the log for good
                self._failed(1, exc)
                log.exception("the request log writer failed on a batch; going on")
            finally:
                self._busy_since = None
            if stop:
                return

    def _take_batch(self, first: LoggedRequest | tuple[_Job, Future[Any]]) -> bool:
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
        self._write(records, jobs)
        return stop

    def _failed(self, count: int, exc: BaseException) -> None:
        self.failed += count
        # The message may quote the offending text: shown redacted, and encodable.
        lines = without_surrogates(redact_text(str(exc))).strip().splitlines()
        self.last_failure = (
            f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        )

    def _write(self, records: list[LoggedRequest], jobs: list[tuple[_Job, Future[Any]]]) -> None:
        # Records first: a job queued in the same batch may refer to any of them.
        if records:
            try:
                self._patiently(lambda: self._insert([r.row() for r in records]))
                self.written += len(records)
            except StateStoreUnreachableError as exc:  # only when stopping
                self._failed(len(records), exc)
            except Exception:
                self._write_one_by_one(records)
        for job, future in jobs:
            try:
                future.set_result(self.database.write(job, retry_seconds=0))
            except Exception as exc:
                future.set_exception(exc)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if self.database.is_postgresql:
            rows = [_without_nul(row) for row in rows]

        def insert(db: Connection) -> None:
            db.execute(upsert(db, schema.requests, key=("id",)), rows)

        self.database.write(insert, retry_seconds=0)

    def _patiently(self, work: Callable[[], None]) -> None:
        """Run `work` until the database answers; give up only when stopping."""
        attempt = 0
        while True:
            try:
                work()
                return
            except StateStoreUnreachableError as exc:
                if self._stopping.is_set():
                    raise
                self.last_failure = f"waiting for the database: {exc}"
                if attempt == 0:
                    log.warning("the request log waits for the database: %s", exc)
                self._stopping.wait(self.database.backoff(attempt))
                attempt += 1

    def _write_one_by_one(self, records: list[LoggedRequest]) -> None:
        """The batch failed: store every record that can be, and count the ones that cannot."""
        for record in records:
            try:
                self._insert([record.row()])
            except (StateStoreError, ValueError, TypeError) as exc:
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

    def _apply_retention(self) -> None:
        now = self._clock()
        if now < self._next_retention:
            return
        self._next_retention = now + _RETENTION_EVERY_SECONDS
        cutoff = now - self.retention_days * 86_400
        requests = schema.requests
        try:
            deleted = self.database.write(
                lambda db: db.execute(delete(requests).where(requests.c.ts < cutoff)).rowcount
            )
        except StateStoreError:
            log.exception("applying the request log retention failed")
            return
        if deleted:
            log.info("deleted %d request log rows older than %g days", deleted, self.retention_days)


def _without_nul(row: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL text cannot hold NUL: a generated output that has one keeps the rest."""
    return {
        key: value.replace("\x00", "\ufffd") if isinstance(value, str) else value
        for key, value in row.items()
    }
