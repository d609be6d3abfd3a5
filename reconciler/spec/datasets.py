"""The JSONL datasets a use case names, read and checked with the desired state.

Two shapes, one JSON object per line (blank lines skipped, other keys ignored, so a line may
carry notes):

- training (`training.data.initial`): string `prompt` and `response`;
- evaluation (`evaluation.prompts`): string `prompt`, optional string `reference`.

Checking them where the desired state is loaded means a malformed line fails
`reconciler validate` with its file and line, not an apply an hour into a rollout. Training
and evaluation read the same bytes the loader digested (from the commit, with `--ref`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ReconcilerError


class DatasetKind(enum.Enum):
    TRAINING = "training"
    EVALUATION = "evaluation"


_REQUIRED = {
    DatasetKind.TRAINING: ("prompt", "response"),
    DatasetKind.EVALUATION: ("prompt",),
}
_OPTIONAL = {DatasetKind.TRAINING: (), DatasetKind.EVALUATION: ("reference",)}


class DatasetError(ReconcilerError):
    """A dataset line is not what its use case needs."""


@dataclass(frozen=True)
class DatasetRecord:
    line: int
    values: Mapping[str, str]


@dataclass(frozen=True)
class DatasetProblem:
    line: int
    message: str


def read_dataset(raw: bytes, kind: DatasetKind) -> tuple[list[DatasetRecord], list[DatasetProblem]]:
    """Every well-formed record, and a problem for every line that is not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [DatasetProblem(_line_of(raw, exc.start), "not UTF-8 text")]
    records: list[DatasetRecord] = []
    problems: list[DatasetProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value: Any = json.loads(line)
        except ValueError as exc:
            problems.append(DatasetProblem(number, f"not a JSON object: {exc}"))
            continue
        except RecursionError:
            # json recurses once per `[` or `{`; no prompt/response line nests like this.
            problems.append(DatasetProblem(number, "nested too deeply to be a JSON object"))
            continue
        if not isinstance(value, dict):
            problems.append(DatasetProblem(number, "not a JSON object"))
            continue
        wrong = [
            key
            for key in (*_REQUIRED[kind], *_OPTIONAL[kind])
            if (key in _REQUIRED[kind] or value.get(key) is not None)
            and not isinstance(value.get(key), str)
        ]
        if wrong:
            needs = " and ".join(f"'{k}'" for k in _REQUIRED[kind])
            optional = "".join(f", optional string '{k}'" for k in _OPTIONAL[kind])
            problems.append(
                DatasetProblem(
                    number,
                    f"a {kind.value} line needs string {needs}{optional}; "
                    f"{', '.join(repr(k) for k in wrong)} missing or not a string",
                )
            )
            continue
        keys = (*_REQUIRED[kind], *_OPTIONAL[kind])
        records.append(
            DatasetRecord(number, {k: value[k] for k in keys if isinstance(value.get(k), str)})
        )
    if not records and not problems:
        problems.append(DatasetProblem(1, f"no {kind.value} examples in the file"))
    return records, problems


def dataset_records(raw: bytes, kind: DatasetKind, *, path: str) -> list[DatasetRecord]:
    """The records, or a `DatasetError` naming the first bad line."""
    records, problems = read_dataset(raw, kind)
    if problems:
        first = problems[0]
        raise DatasetError(f"{path}:{first.line}: {first.message}")
    return records


def _line_of(raw: bytes, offset: int) -> int:
    return raw[:offset].count(b"\n") + 1
