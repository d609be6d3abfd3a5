"""Health from the current desired state's own records: the table of what status says."""

from __future__ import annotations

import pytest

from reconciler import lineage
from reconciler.apply.journal import Operation, OperationStatus
from reconciler.apply.status import _health
from reconciler.health import Health

DIGEST = "sha256:now"


def operation(status: OperationStatus, message: str = "") -> Operation:
    return Operation(1, "npc", DIGEST, "shift", 0, status, message, None, "t0", None)


CASES: list[tuple[str, dict[str, object], Health, str]] = [
    ("converged", {}, Health.HEALTHY, "serving the desired version"),
    ("nothing routed", {"has_routes": False}, Health.MISSING, "no live routes"),
    (
        "routes exist but the gateway cannot serve them",
        {"unservable": ("version 2 cannot be served: STORY_KEY is not set",)},
        Health.DEGRADED,
        "STORY_KEY is not set",
    ),
    (
        "candidate rejected for this desired state",
        {
            "candidate_tags": {lineage.REJECTED: "errorRate", lineage.REJECTED_DIGEST: DIGEST},
            "candidate": "3",
        },
        Health.DEGRADED,
        "candidate 3 rejected: errorRate",
    ),
    (
        "rejected for an older desired state does not count",
        {
            "candidate_tags": {lineage.REJECTED: "errorRate", lineage.REJECTED_DIGEST: "old"},
            "candidate": "3",
        },
        Health.HEALTHY,
        "serving",
    ),
    (
        "the last operation for this desired state failed",
        {"operation": operation(OperationStatus.FAILED, "train failed: no data")},
        Health.DEGRADED,
        "train failed",
    ),
    (
        "interrupted with changes pending",
        {"operation": operation(OperationStatus.INTERRUPTED, "interrupted"), "pending": 2},
        Health.SUSPENDED,
        "interrupted",
    ),
    (
        "interrupted but converged since",
        {"operation": operation(OperationStatus.INTERRUPTED, "interrupted")},
        Health.HEALTHY,
        "serving",
    ),
]


@pytest.mark.parametrize(("title", "given", "health", "says"), CASES, ids=[c[0] for c in CASES])
def test_health(title: str, given: dict[str, object], health: Health, says: str) -> None:
    arguments: dict[str, object] = {
        "candidate_tags": {},
        "candidate": None,
        "digest": DIGEST,
        "operation": None,
        "rollout": None,
        "has_routes": True,
        "pending": 0,
    }
    found, message = _health(**(arguments | given))  # type: ignore[arg-type]
    assert found is health and says in message
