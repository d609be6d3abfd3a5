"""Diagnostics: every problem found in the desired state, with where it is.

Validation accumulates diagnostics instead of raising on the first problem, so one run shows
every error (Terraform's `tfdiags`). Each renders as ``FILE:LINE:COL: field.path: message``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace


class DiagnosticLevel(enum.StrEnum):
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
    severity: DiagnosticLevel = DiagnosticLevel.ERROR
    # How many problems this line stands for: more than one for a summary of repeats.
    repeats: int = 1

    def render(self) -> str:
        where = self.file
        if self.position is not None:
            where = f"{self.file}:{self.position.line}:{self.position.column}"
        field = f" {self.field}:" if self.field else ""
        prefix = "" if self.severity is DiagnosticLevel.ERROR else f" {self.severity.value}:"
        return f"{where}:{prefix}{field} {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        line, column = (self.position.line, self.position.column) if self.position else (0, 0)
        return (self.file, line, column, self.field)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is DiagnosticLevel.ERROR for d in diagnostics)


# One mistake repeated (5,000 rollout steps of the wrong type) is shown a few times and then
# summarised; a flood of different problems is cut off after MAX_SHOWN lines.
REPEATS_SHOWN = 5
MAX_SHOWN = 200
_INDEX = re.compile(r"\[\d+\]")


def count_problems(
    diagnostics: Iterable[Diagnostic], severity: DiagnosticLevel = DiagnosticLevel.ERROR
) -> int:
    """How many problems of `severity` the diagnostics stand for, summarised ones included."""
    return sum(d.repeats for d in diagnostics if d.severity is severity)


def summarise_repeats(
    diagnostics: Sequence[Diagnostic], *, shown: int = REPEATS_SHOWN, limit: int = MAX_SHOWN
) -> tuple[Diagnostic, ...]:
    """`diagnostics` with each repeated problem (same file, message and field up to list
    indexes) shown `shown` times, then one line for the rest, where the first hidden one was;
    at most `limit` lines in all, the last one saying how many more there are."""
    groups: dict[tuple[str, DiagnosticLevel, str, str], list[int]] = {}
    for index, diagnostic in enumerate(diagnostics):
        key = (
            diagnostic.file,
            diagnostic.severity,
            diagnostic.message,
            _INDEX.sub("[*]", diagnostic.field),
        )
        groups.setdefault(key, []).append(index)
    kept: dict[int, Diagnostic] = {}
    for (_, _, message, field), members in groups.items():
        for index in members[:shown]:
            kept[index] = diagnostics[index]
        hidden = members[shown:]
        if hidden:
            first = diagnostics[hidden[0]]
            kept[hidden[0]] = replace(
                first,
                field=field,
                message=f"{message} ({len(hidden)} more like this, not shown)",
                repeats=sum(diagnostics[i].repeats for i in hidden),
            )
    result = [kept[i] for i in sorted(kept)]
    if len(result) <= limit:
        return tuple(result)
    rest = result[limit - 1 :]
    last = rest[0]
    cut = Diagnostic(
        last.file,
        last.position,
        "",
        f"{len(rest)} more problem line(s) not shown; fix the ones above first",
        severity=DiagnosticLevel.ERROR if has_errors(rest) else DiagnosticLevel.WARNING,
        repeats=sum(d.repeats for d in rest),
    )
    return (*result[: limit - 1], cut)
