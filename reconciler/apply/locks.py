"""One lock per use case, so two reconcilers never act on the same use case at once.

Two implementations of one small interface, chosen by where the state lives:

- SQLite (one host): `flock` on a file per use case in the state folder. The kernel releases
  it when the holder dies (kill -9 included), so a stale lock from a dead process is taken
  over without guessing about pids. The holder writes who it is (pid, host, since) into the
  file for the message a waiting reconciler prints.
- PostgreSQL (several hosts): a session-level advisory lock per use case
  (`state_store.advisory_locks`), released by the server when its holder's session ends,
  with the holder named the same way.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import IO, Protocol

from reconciler.clock import SYSTEM_CLOCK, Clock, iso
from reconciler.errors import LockHeldError
from reconciler.state_files import private_folder
from reconciler.state_store.database import StateDatabase

__all__ = ["FileLocks", "LockHeldError", "UseCaseLocks", "locks_for", "use_case_locks"]


class UseCaseLocks(Protocol):
    def hold(
        self, use_case: str, *, timeout: float = 0.0, clock: Clock = SYSTEM_CLOCK
    ) -> AbstractContextManager[None]:
        """Hold the lock of `use_case`; wait up to `timeout` seconds, then raise
        LockHeldError naming the holder."""
        ...

    def holder(self, use_case: str) -> str | None:
        """Who holds the lock of `use_case` right now, or None when nobody does (a holder
        that died reads as nobody)."""
        ...


def locks_for(database: StateDatabase, state_dir: Path) -> UseCaseLocks:
    """Advisory locks on a PostgreSQL store; lock files in the state folder on SQLite."""
    if database.is_postgresql:
        from reconciler.state_store.advisory_locks import AdvisoryLocks

        return AdvisoryLocks(database)
    return FileLocks(state_dir)


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except ValueError:
        return "another reconciler"
    if not info:
        return "another reconciler"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"


class FileLocks:
    """`flock` per use case under `state_dir/locks`: one host's reconcilers."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def _path(self, use_case: str) -> Path:
        return private_folder(self.state_dir / "locks") / f"{use_case}.lock"

    def holder(self, use_case: str) -> str | None:
        # Probes by trying the lock without waiting (and letting it go at once), so a holder
        # that died - whose lock the kernel released - reads as nobody.
        with self._path(use_case).open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return _holder(handle)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return None

    @contextmanager
    def hold(
        self, use_case: str, *, timeout: float = 0.0, clock: Clock = SYSTEM_CLOCK
    ) -> Iterator[None]:
        with self._path(use_case).open("a+", encoding="utf-8") as handle:
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
    locks: UseCaseLocks, use_cases: Sequence[str], *, timeout: float, clock: Clock = SYSTEM_CLOCK
) -> Iterator[None]:
    """Locks of several use cases, taken in name order so two appliers never deadlock."""
    with ExitStack() as stack:
        for name in sorted(set(use_cases)):
            stack.enter_context(locks.hold(name, timeout=timeout, clock=clock))
        yield
