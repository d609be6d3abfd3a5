"""Errors that reach the user.

Every error the CLI prints derives from `ReconcilerError`; anything else is a bug and is
reported as one. Messages say what is wrong and, where we know it, what to do next.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """An error with a message fit to show a user; the CLI exits 1 on it."""


class SourceError(ReconcilerError):
    """The desired-state source (folder or git ref) cannot be read."""


class RegistryError(ReconcilerError):
    """The model registry (MLflow) cannot be reached or answered unexpectedly."""


class StateStoreError(ReconcilerError):
    """The local state folder (traffic store) cannot be used."""


class PlanFileError(ReconcilerError):
    """A saved plan file cannot be read: wrong format, unknown version, or corrupt."""
