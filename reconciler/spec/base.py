"""Pieces every desired-state model shares: the frozen camelCase base, field types, errors.

Kept apart from `model.py` so the documents' sections (use case, discovery, guardrails) can
live in their own modules without importing each other.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler.spec.durations import DURATION_PATTERN

Name = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Lower-case letters, digits and '-', starting and ending alphanumeric.",
    ),
]
RepoPath = Annotated[
    str,
    Field(
        min_length=1,
        description="Path relative to the repository root, with '/' separators.",
    ),
]
Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, description="A duration such as 90s, 30m, 1h30m or 7d."),
]
EnvVarName = Annotated[
    str,
    Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        max_length=128,
        description="Name of an environment variable (the value itself never goes in git).",
    ),
]

# Shapes of well-known secrets, in any case (a key pasted in capitals still passes the
# variable-name pattern): writing one where an environment variable *name* belongs is an
# error, and the value is never echoed back.
SECRET_SHAPES = re.compile(
    r"^(sk-|sk_|hf_)|^(?i:[sr]k_(live|test)_|pk_live_|gh[pousr]_|github_pat_|xox[abpr]-)"
    r"|^AKIA[A-Z0-9]{16}$",
    re.ASCII,
)
# A name is made of words (OPENAI_API_KEY); key material is a long run of letters mixed with
# digits (SK_LIVE_51H8XQ2V…): a part of 16+ characters with at least 4 digits in it.
_KEY_LIKE_PART = re.compile(r"^(?=(?:[A-Z]*[0-9]){4})[A-Z0-9]{16,}$", re.ASCII | re.IGNORECASE)
SECRET_MESSAGE = (
    "this looks like a secret value; write the NAME of an environment variable that holds it "
    "(the value is not shown)"
)


def looks_like_key_material(value: str) -> bool:
    """Whether `value`, meant to be a variable name, looks like a secret value instead."""
    return bool(SECRET_SHAPES.match(value)) or any(
        _KEY_LIKE_PART.match(part) for part in re.split(r"[_-]", value)
    )


def reject_secret(value: object) -> object:
    """A `mode="before"` check for fields that hold an environment variable's name."""
    if isinstance(value, str) and looks_like_key_material(value):
        raise ValueError(SECRET_MESSAGE)
    return value


def require_unique(names: list[str], what: str) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(duplicates)}")


class SpecModel(BaseModel):
    """Base of every desired-state object: frozen, camelCase in YAML, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=False,
    )


class NestedFieldError(ValueError):
    """Several problems in one model validator, each with its own path below the model."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems
