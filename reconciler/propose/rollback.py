"""Rollbacks written back to git: a version the reconciler rolled back is recorded in
`spec.rejected`, so git stays the source of truth and the candidate is never retried.

Found in the observed registry: a version of the use case's registered model tagged
`reconciler.rejected` (set by an automatic rollback - failed canary analysis or the guardrail
monitor) whose key is not in `spec.rejected` yet. Pure over the observed snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconciler import lineage
from reconciler.observe.state import ObservedState
from reconciler.spec.model import UseCase


@dataclass(frozen=True)
class Rejection:
    use_case: str
    key: str
    version: str
    reason: str
    model: str | None

    def entry(self, at: datetime) -> dict[str, str | None]:
        entry: dict[str, str | None] = {
            "key": self.key,
            "version": self.version,
            "reason": " ".join(self.reason.split())[:900] or "rolled back",
            "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.model:
            entry["model"] = self.model[:400]
        return entry


def unrecorded_rejections(use_case: UseCase, observed: ObservedState) -> list[Rejection]:
    model = observed.registered_model(use_case.spec.registered_model)
    if model is None:
        return []
    recorded = {r.key for r in use_case.spec.rejected}
    found: dict[str, Rejection] = {}
    for version in sorted(model.versions, key=lambda v: int(v.version)):
        reason = version.tag(lineage.REJECTED)
        key = version.tag(lineage.KEY)
        if reason is None or key is None or key in recorded or key in found:
            continue
        base = version.tag(lineage.BASE_MODEL)
        revision = version.tag(lineage.BASE_REVISION)
        shown = f"{base}@{revision[:12]}" if base and revision else base
        found[key] = Rejection(use_case.name, key, version.version, reason, shown)
    return list(found.values())
