"""One lock per use case, so two reconcilers never act on the same use case at once.

`flock` on a file per use case: the kernel releases it when the holder dies (kill -9
included), so a stale lock from a dead process is taken over without guessing about pids.
The holder writes who it is (pid, host, since) into the file for the message a waiting
reconciler prints. Locks live in the state folder, which is per machine; several machines
need a shared lock service (the PostgreSQL route table's advisory locks) instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

from reconciler.clock import SYSTEM_CLOCK, Clock, iso
from reconciler.errors import TemporaryError
from reconciler.state_files import private_folder


class LockHeldError(TemporaryError):
    """Another reconciler holds the lock of a use case."""


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except ValueError:
        return "another reconciler"
    if not info:
        return "another reconciler"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"


def _lock_path(state_dir: Path, use_case: str) -> Path:
    return private_folder(state_dir / "locks") / f"{use_case}.lock"


def held_by(state_dir: Path, use_case: str) -> str | None:
    """Who holds the lock of `use_case` right now, or None when nobody does.

    Probes by trying the lock without waiting (and letting it go at once), so a holder that
    died - whose lock the kernel released - reads as nobody.
    """
    path = _lock_path(state_dir, use_case)
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(handle)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None


@contextmanager
def use_case_lock(
    state_dir: Path, use_case: str, *, timeout: float = 0.0, clock: Clock = SYSTEM_CLOCK
) -> Iterator[None]:
    """Hold the lock of `use_case`; wait up to `timeout` seconds, then raise LockHeldError."""
    path = _lock_path(state_dir, use_case)
    with path.open("a+", encoding="utf-8") as handle:
        deadline = clock.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock.monotonic() >= deadline:
                    raise LockHeldError(
                        f"use case {use_case} is being reconciled by {_holder(handle)}; "
                        f"waited {timeout:g}s (use --lock-timeout to wait longer)"
                    ) from None
                clock.sleep(min(0.2, max(0.0, deadline - clock.monotonic())))
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": iso(clock)})
        )
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def use_case_locks(
    state_dir: Path, use_cases: Sequence[str], *, timeout: float, clock: Clock = SYSTEM_CLOCK
) -> Iterator[None]:
    """Locks of several use cases, taken in name order so two appliers never deadlock."""
    with ExitStack() as stack:
        for name in sorted(set(use_cases)):
            stack.enter_context(use_case_lock(state_dir, name, timeout=timeout, clock=clock))
        yield
