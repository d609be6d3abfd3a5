"""Deliveries leave from a bounded queue on one worker thread: a reconcile never waits on one.

`submit` never blocks and never raises: a full queue drops the delivery and records that.
The worker POSTs each delivery with retries and exponential backoff (tenacity): connection
errors, timeouts, 429 (honouring `Retry-After`, capped) and 5xx are tried again; any other
answer is final. A delivery that still fails is recorded - logged, counted, kept among the
recent failures, and appended to a JSON-lines file in the state folder when one is given -
with the webhook's name and the cause, never its URL, secret or signature.

`close` drains what is queued within its timeout; what is left is recorded as abandoned.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import tenacity

from reconciler.discovery.retries import retry_after_seconds
from reconciler.redaction import redact_text
from reconciler.state_files import private_file

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1000
DEFAULT_ATTEMPTS = 5
RECENT_KEPT = 100


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook: str
    event: str
    use_case: str | None
    url: str = field(repr=False)  # may be a credential (a Slack webhook): never shown
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class DeliveryFailure:
    delivery: str
    webhook: str
    event: str
    use_case: str | None
    at: str
    attempts: int
    error: str

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery,
            "webhook": self.webhook,
            "event": self.event,
            "use_case": self.use_case,
            "at": self.at,
            "attempts": self.attempts,
            "error": self.error,
        }


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = DEFAULT_ATTEMPTS
    first_wait: float = 1.0
    max_wait: float = 30.0
    timeout: float = 10.0


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _FinalError(Exception):
    pass


_STOP = object()


class Dispatcher:
    """One per process: owns the queue, the worker thread and the delivery counts."""

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        retry: RetrySettings | None = None,
        failure_log: Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetrySettings()
        self.failure_log = failure_log
        self._queue: queue.Queue[Delivery | object] = queue.Queue(maxsize=capacity)
        self._transport = transport
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._abandon = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued or being delivered
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.recent_failures: deque[DeliveryFailure] = deque(maxlen=RECENT_KEPT)

    # -- submitting --------------------------------------------------------------------------

    def submit(self, delivery: Delivery) -> bool:
        """Queue `delivery`; False (and recorded) when the queue is full or closed."""
        if self._closing.is_set():
            self.record_failure(delivery, 0, "not sent: notifications are shutting down")
            return False
        self._ensure_worker()
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            with self._lock:
                self._pending -= 1
                self.dropped += 1
            self.record_failure(delivery, 0, "dropped: the delivery queue is full")
            return False
        return True

    def record_failure(self, delivery: Delivery, attempts: int, error: str) -> None:
        failure = DeliveryFailure(
            delivery=delivery.id,
            webhook=delivery.webhook,
            event=delivery.event,
            use_case=delivery.use_case,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            attempts=attempts,
            error=redact_text(error)[:500],
        )
        with self._lock:
            self.failed += 1
            self.recent_failures.append(failure)
        log.warning(
            "notification %s (%s) to webhook %s failed after %d attempt(s): %s",
            failure.delivery,
            failure.event,
            failure.webhook,
            attempts,
            failure.error,
        )
        if self.failure_log is not None:
            try:
                with private_file(self.failure_log).open("a", encoding="utf-8") as out:
                    out.write(json.dumps(failure.as_json()) + "\n")
            except OSError as exc:
                log.warning(
                    "cannot record the failed notification in %s: %s", self.failure_log, exc
                )

    # -- waiting and stopping ----------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted was delivered or recorded as failed."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within `timeout`; record the rest as abandoned."""
        self._closing.set()
        thread = self._thread
        if thread is None:
            return
        if not self.flush(timeout):
            self._abandon.set()  # cuts the backoff waits short; the retries give up
        self._queue.put(_STOP)
        thread.join(timeout=max(1.0, self.retry.timeout + 1.0))

    # -- the worker --------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="notifications", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        with httpx.Client(
            timeout=httpx.Timeout(self.retry.timeout), transport=self._transport
        ) as client:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                assert isinstance(item, Delivery)
                try:
                    self._deliver(client, item)
                except Exception as exc:  # a bug here must not stop later deliveries
                    self.record_failure(item, 0, f"internal error: {type(exc).__name__}: {exc}")
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()

    def _deliver(self, client: httpx.Client, delivery: Delivery) -> None:
        if self._abandon.is_set():
            self.record_failure(delivery, 0, "abandoned: the process stopped before sending it")
            return
        settings = self.retry

        def wait(state: tenacity.RetryCallState) -> float:
            backoff = settings.first_wait * 2.0 ** (state.attempt_number - 1)
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _RetryableError) and error.retry_after is not None:
                backoff = max(backoff, error.retry_after)
            return float(min(backoff, settings.max_wait))

        def give_up(state: tenacity.RetryCallState) -> bool:
            return state.attempt_number >= settings.attempts or self._abandon.is_set()

        def sleep(seconds: float) -> None:
            self._abandon.wait(seconds)  # returns at once when the process is stopping

        retrying = tenacity.Retrying(
            stop=give_up,
            wait=wait,
            retry=tenacity.retry_if_exception_type(_RetryableError),
            sleep=sleep,
            reraise=True,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    if attempts and self._abandon.is_set():
                        raise _FinalError(
                            f"given up when the process stopped, after {attempts} failed attempt(s)"
                        )
                    attempts += 1
                    _post(client, delivery)
        except (_RetryableError, _FinalError) as exc:
            self.record_failure(delivery, attempts, str(exc))
            return
        with self._lock:
            self.delivered += 1


def _post(client: httpx.Client, delivery: Delivery) -> None:
    try:
        response = client.post(delivery.url, content=delivery.body, headers=dict(delivery.headers))
    except httpx.TimeoutException:
        raise _RetryableError("the receiver did not answer in time") from None
    except httpx.TransportError as exc:
        raise _RetryableError(f"cannot reach the receiver ({type(exc).__name__})") from None
    status = response.status_code
    if status < 300:
        return
    if status == 429 or status >= 500:
        after = retry_after_seconds(response.headers.get("Retry-After"))
        raise _RetryableError(f"the receiver answered {status}", after)
    raise _FinalError(f"the receiver refused it: {status}")
