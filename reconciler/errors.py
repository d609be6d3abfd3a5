"""Errors that reach the user.

Every error the CLI prints derives from `ReconcilerError`; anything else is a bug and is
reported as one. Messages say what is wrong and, where we know it, what to do next.

Errors also say whether waiting helps (kopf's `TemporaryError` / `PermanentError`): a
`TemporaryError` (a server unreachable, a lock held, a provider failing) is retried by the
controller with backoff; any other error stays until the desired state or the world changes.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """An error with a message fit to show a user; the CLI exits 1 on it."""


class TemporaryError(ReconcilerError):
    """Worth trying again later: the cause may go away by itself."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceError(ReconcilerError):
    """The desired-state source (folder or git ref) cannot be read."""


class RegistryError(TemporaryError):
    """The model registry (MLflow) cannot be reached or answered unexpectedly."""


class StateStoreError(TemporaryError):
    """The local state folder (traffic store, journal) cannot be used."""


class LockHeldError(TemporaryError):
    """Another reconciler holds the lock of a use case."""


class PlanFileError(ReconcilerError):
    """A saved plan file cannot be read: wrong format, unknown version, or corrupt."""


def is_temporary(error: BaseException) -> bool:
    return isinstance(error, TemporaryError)
