"""Notifications of a rollout's events, with the facts a receiver acts on.

Every event carries the candidate, the champion, the stage and its weight; an analysis that
failed, and the rollback it led to, carry each failed metric with its value, threshold and
sample size, taken from the judgement the machine acted on.
"""

from __future__ import annotations

from typing import Any

from reconciler.notifications.events import Notification
from reconciler.rollout.analysis import AnalysisOutcome
from reconciler.rollout.state import RolloutState
from reconciler.spec.notifications import NotificationEvent


def rollout_notification(
    event: str, message: str, state: RolloutState, *, at: float
) -> Notification:
    """`event` is the machine's `EventKind` value; notification events share those names."""
    details: dict[str, Any] = {
        "candidate": state.candidate,
        "champion": state.champion,
        "strategy": state.strategy.value,
        "stage": state.stage.label,
        "step": f"{state.stage_index + 1}/{len(state.stages)}",
        "weight": state.stage.weight,
        "phase": state.phase.value,
        "digest": state.digest,
    }
    kind = NotificationEvent(event)
    judgement = state.last_judgement
    if (
        kind in (NotificationEvent.ANALYSIS_FAILED, NotificationEvent.ROLLED_BACK)
        and judgement is not None
        and judgement.candidate == state.candidate
    ):
        failed = [
            m.as_json()
            for m in judgement.analysis.measurements
            if m.outcome is AnalysisOutcome.FAILED
        ]
        if failed:
            details["failed_metrics"] = failed
            details["failed_at_stage"] = judgement.stage
        details["requests"] = judgement.analysis.requests
    return Notification(kind, state.use_case, message, at, details)
