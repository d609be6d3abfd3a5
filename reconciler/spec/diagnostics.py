"""Diagnostics: every problem found in the desired state, with where it is.

Validation accumulates diagnostics instead of raising on the first problem, so one run shows
every error (Terraform's `tfdiags`). Each renders as ``FILE:LINE:COL: field.path: message``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one file, at one place, about one field."""

    file: str
    position: Position | None
    field: str
    message: str
    severity: Severity = Severity.ERROR

    def render(self) -> str:
        where = self.file
        if self.position is not None:
            where = f"{self.file}:{self.position.line}:{self.position.column}"
        field = f" {self.field}:" if self.field else ""
        prefix = "" if self.severity is Severity.ERROR else f" {self.severity.value}:"
        return f"{where}:{prefix}{field} {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        line, column = (self.position.line, self.position.column) if self.position else (0, 0)
        return (self.file, line, column, self.field)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
