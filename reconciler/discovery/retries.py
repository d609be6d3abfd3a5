"""HTTP with timeouts, retries and backoff, honouring `429 Retry-After` - for every adapter
(httpx directly, and huggingface_hub through `sources.hub_client`).

A rate limit or a restarting server is a reason to wait and try again, a wrong URL or a refused
key is not: 429 and 502-504 and connection errors are retried with exponential backoff (or the
server's `Retry-After`, when it sends one), anything else is answered at once. The wait is an
injected function, so tests follow every retry without sleeping, and a `Retry-After` longer
than `max_wait` gives up with a message instead of blocking a scheduled job for an hour.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from reconciler.errors import ReconcilerError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class UnreachableError(ReconcilerError):
    """The service did not answer usefully after the retries; the message says why."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_wait: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)  # each attempt's

    def delay(self, attempt: int) -> float:
        return float(min(self.base_delay * (2**attempt), self.max_wait))


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either a number or an HTTP date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Retry:
    """An attempt worth repeating: what went wrong, and the server's `Retry-After` if any."""

    problem: str
    retry_after: float | None = None


T = TypeVar("T")


def call_with_retries(attempt: Callable[[], T | Retry], *, policy: RetryPolicy, what: str) -> T:
    """The first result of `attempt` that is not a `Retry`, waiting between attempts.

    A `Retry-After` is honoured, or the backoff grows exponentially; a `Retry-After` beyond
    `policy.max_wait` gives up at once. Raises UnreachableError when every attempt asked to be
    retried; `what` names the service in that message (never credentials or headers).
    """
    last_problem = "no attempt was made"
    for attempt_number in range(policy.attempts):
        outcome = attempt()
        if not isinstance(outcome, Retry):
            return outcome
        last_problem, wait = outcome.problem, outcome.retry_after
        if wait is not None and wait > policy.max_wait:
            raise UnreachableError(
                f"{what}: rate limited; the server asks to retry after {wait:.0f}s"
            )
        if attempt_number + 1 < policy.attempts:
            policy.sleep(wait if wait is not None else policy.delay(attempt_number))
    raise UnreachableError(f"{what}: {last_problem} after {policy.attempts} attempts")


def request_with_retries(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    what: str,
    **kwargs: Any,
) -> httpx.Response:
    """The response of the first attempt that is not worth retrying.

    Raises UnreachableError when every attempt failed to connect or kept being throttled;
    `what` names the service in that message (never the URL's credentials or headers).
    """

    def attempt() -> httpx.Response | Retry:
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            return Retry(f"cannot connect ({type(exc).__name__})")
        if response.status_code not in RETRY_STATUSES:
            return response
        return Retry(
            f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("Retry-After"))
        )

    return call_with_retries(attempt, policy=policy, what=what)
