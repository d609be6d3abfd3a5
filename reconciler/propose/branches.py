"""Branch names and the hidden marker that ties a pull request to what it proposes.

A candidate's id comes from outside, so it reaches a branch name only through `branch_part`:
lower-case letters, digits, '.', '_' and '-', no '..', no leading '-' or '.', bounded length -
nothing git or a shell could read as syntax. The marker is an HTML comment holding base64 of
JSON: invisible in the rendered PR, and no id can close the comment early.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

BRANCH_PREFIX = "reconciler/"
GROUP_BRANCH = "reconciler/group/model-upgrades"
MARKER = "reconciler:proposal"
_MARKER = re.compile(r"<!-- reconciler:proposal ([A-Za-z0-9+/=]+) -->")
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
MAX_PART = 60


def branch_part(text: str) -> str:
    part = _UNSAFE.sub("-", text.lower())
    part = re.sub(r"\.{2,}", ".", part)
    part = re.sub(r"-{2,}", "-", part).strip("-._")
    part = part[:MAX_PART].rstrip("-._")
    if part.endswith(".lock"):
        part = part[: -len(".lock")]
    return part or "model"


def use_case_prefix(use_case: str) -> str:
    return f"{BRANCH_PREFIX}{branch_part(use_case)}/"


def proposal_branch(use_case: str, source: str, candidate_id: str) -> str:
    """`reconciler/<use case>/<source>-<candidate>`; the revision is left out so a newer
    revision of the same model updates the same branch."""
    return use_case_prefix(use_case) + branch_part(f"{source}-{candidate_id}")


def rollback_branch(use_case: str) -> str:
    return f"{BRANCH_PREFIX}rejected/{branch_part(use_case)}"


@dataclass(frozen=True)
class Proposed:
    """One use case's upgrade as recorded in its pull request."""

    use_case: str
    source: str
    id: str
    revision: str | None

    @property
    def identity(self) -> tuple[str, str, str | None]:
        return (self.source, self.id, self.revision)


def marker(proposals: Sequence[Proposed]) -> str:
    payload = json.dumps(
        [
            {"use_case": p.use_case, "source": p.source, "id": p.id, "revision": p.revision}
            for p in proposals
        ],
        sort_keys=True,
    )
    encoded = base64.b64encode(payload.encode("utf-8")).decode("ascii")
    return f"<!-- {MARKER} {encoded} -->"


def read_marker(body: str) -> list[Proposed]:
    """What a proposal PR proposed; empty when the body carries no (valid) marker."""
    match = _MARKER.search(body or "")
    if match is None:
        return []
    try:
        items = json.loads(base64.b64decode(match.group(1), validate=True))
    except (binascii.Error, ValueError):
        return []
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        values = [item.get(k) for k in ("use_case", "source", "id")]
        revision = item.get("revision")
        if all(isinstance(v, str) for v in values) and (
            revision is None or isinstance(revision, str)
        ):
            found.append(Proposed(values[0], values[1], values[2], revision))  # type: ignore[arg-type]
    return found
