"""Saved plans: the JSON rendering, read back strictly.

A plan file is versioned (`format_version`); any other version - an older one included, whose
untyped changes this reconciler no longer reads - is refused rather than guessed at, with a
message to plan again. A file whose summary disagrees with its changes is corrupt. (Whether
its changes are what the planner makes is checked at apply time, against the world.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.errors import PlanFileError
from reconciler.plan.model import PLAN_FORMAT_VERSION, Plan


def plan_to_json(plan: Plan) -> dict[str, Any]:
    document = plan.model_dump(mode="json")
    document["summary"] = plan.summary()
    return document


def dumps(plan: Plan) -> str:
    return json.dumps(plan_to_json(plan), indent=2, sort_keys=False) + "\n"


def loads(text: str, *, origin: str = "plan") -> Plan:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PlanFileError(f"{origin} is not a plan file (not JSON: {exc})") from exc
    if not isinstance(document, dict) or "format_version" not in document:
        raise PlanFileError(f"{origin} is not a plan file (no format_version)")
    version = document["format_version"]
    if version != PLAN_FORMAT_VERSION:
        raise PlanFileError(
            f"{origin} has plan format {version!r}; this reconciler reads format "
            f"{PLAN_FORMAT_VERSION} only. Make the plan again: `reconciler plan --out FILE`."
        )
    summary = document.pop("summary", None)
    try:
        plan = Plan.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanFileError(f"{origin} is corrupt: {where}: {first['msg']}") from exc
    if summary is not None and summary != plan.summary():
        raise PlanFileError(f"{origin} is corrupt: its summary does not match its changes")
    return plan


def save(plan: Plan, path: Path) -> None:
    """Write atomically, so an interrupted save never leaves half a plan."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(dumps(plan), encoding="utf-8")
    temporary.replace(path)


def load(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"cannot read plan file {path}: {exc}") from exc
    return loads(text, origin=str(path))
