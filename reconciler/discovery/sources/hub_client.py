"""huggingface_hub's HTTP under the reconciler's retry policy, with a timeout on every request.

Left alone, the library sends Hub API calls with no timeout, and its listing retries by itself
with real sleeps, honouring any `Retry-After` however long, while `model_info` does not retry
at all. Inside `governed()` (in this thread only) the Hub client's answers worth retrying
(429, 5xx) and its connection failures come back as `HubCallError` before the library's own
backoff sees them, every request gets the policy's timeout, and `call_with_retries` with the
shared `RetryPolicy` decides whether and how long to wait (an injected sleep: tests never
sleep). Outside it the client behaves exactly as the library's default one.

The client is installed once through the library's public `set_client_factory`; it carries the
library's own request hook (offline mode, request ids), so other callers in the process see no
difference.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import httpx
import httpx2

from reconciler.discovery.retries import (
    RETRY_STATUSES,
    Retry,
    RetryPolicy,
    call_with_retries,
    retry_after_seconds,
)

T = TypeVar("T")

# Statuses huggingface_hub would retry with its own sleeps; 500 is answered, not retried, here.
_HUB_RETRIED = RETRY_STATUSES | {500}
# The timeout of each request while governed; None: the library's own behaviour.
_GOVERNED: ContextVar[httpx.Timeout | None] = ContextVar("hub_calls_governed", default=None)
_install_lock = threading.Lock()
_installed = threading.Event()


class HubCallError(Exception):
    """A Hub answer or failure taken out of the library's hands; `retry` says whether and when
    to try again (None: not worth retrying)."""

    def __init__(self, problem: str, retry: Retry | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry = retry


def _governed_request(request: httpx2.Request) -> None:
    timeout = _GOVERNED.get()
    if timeout is not None:
        request.extensions["timeout"] = timeout.as_dict()


def _governed_response(response: httpx2.Response) -> None:
    status = response.status_code
    if _GOVERNED.get() is None or status not in _HUB_RETRIED:
        return
    response.close()
    problem = f"HTTP {status}"
    if status not in RETRY_STATUSES:
        raise HubCallError(problem, None)
    raise HubCallError(
        problem, Retry(problem, retry_after_seconds(response.headers.get("Retry-After")))
    )


class _GovernedTransport(httpx2.BaseTransport):
    """Connection failures and timeouts as `HubCallError`, so the library does not retry them."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if _GOVERNED.get() is None:
            return self._inner.handle_request(request)
        try:
            return self._inner.handle_request(request)
        except httpx2.TimeoutException as exc:
            problem = f"no answer in time ({type(exc).__name__})"
            raise HubCallError(problem, Retry(problem)) from None
        except httpx2.TransportError as exc:
            problem = f"cannot connect ({type(exc).__name__})"
            raise HubCallError(problem, Retry(problem)) from None

    def close(self) -> None:
        self._inner.close()


def _client() -> httpx2.Client:
    # The library's request hook: offline mode is refused, each request gets an id.
    from huggingface_hub.utils._http import hf_request_event_hook

    return httpx2.Client(
        transport=_GovernedTransport(httpx2.HTTPTransport()),
        event_hooks={
            "request": [hf_request_event_hook, _governed_request],
            "response": [_governed_response],
        },
        follow_redirects=True,
        timeout=None,
    )


def _install() -> None:
    with _install_lock:
        if not _installed.is_set():
            from huggingface_hub import set_client_factory

            set_client_factory(_client)
            _installed.set()


@contextmanager
def governed(timeout: httpx.Timeout) -> Iterator[None]:
    """Hub calls made in this block (in this thread) have `timeout` and answer to
    `call_hub`'s retry policy."""
    _install()
    token = _GOVERNED.set(timeout)
    try:
        yield
    finally:
        _GOVERNED.reset(token)


def call_hub(call: Callable[[], T], *, policy: RetryPolicy, what: str) -> T:
    """`call()` (a huggingface_hub call, inside `governed()`), retried under `policy`.

    Raises UnreachableError when every attempt was throttled or failed to connect, HubCallError
    for a server error not worth retrying, and the library's own errors (404, 401, gated) as
    they are.
    """

    def attempt() -> T | Retry:
        try:
            return call()
        except HubCallError as answer:
            if answer.retry is None:
                raise
            return answer.retry

    return call_with_retries(attempt, policy=policy, what=what)
