"""Payloads: a notification as generic JSON, or as a Slack-compatible incoming-webhook message.

Pure: the same notification and delivery id give the same bytes (they are what is signed).
Every text that reaches a payload goes through `redact_text` first - a message can quote an
upstream's error - so no credential leaves in a notification.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler import __version__
from reconciler.notifications.events import Notification
from reconciler.redaction import redact_text
from reconciler.spec.notifications import NotificationEvent, PayloadFormat

SOURCE = "model-reconciler"
# Slack shows this before the message; plain characters render everywhere.
_MARKS = {
    NotificationEvent.ROLLOUT_STARTED: ":arrow_forward:",
    NotificationEvent.STEP_PASSED: ":white_check_mark:",
    NotificationEvent.ANALYSIS_FAILED: ":warning:",
    NotificationEvent.PAUSED: ":double_vertical_bar:",
    NotificationEvent.PAUSED_NO_DATA: ":hourglass:",
    NotificationEvent.RESUMED: ":arrow_forward:",
    NotificationEvent.PROMOTED: ":tada:",
    NotificationEvent.ROLLED_BACK: ":rewind:",
    NotificationEvent.DRIFT_DETECTED: ":twisted_rightwards_arrows:",
    NotificationEvent.GUARDRAIL_CRITICAL_RATE: ":rotating_light:",
    NotificationEvent.GUARDRAIL_ENGAGEMENT_WINDOW: ":chart_with_upwards_trend:",
    NotificationEvent.PROPOSAL_OPENED: ":memo:",
    NotificationEvent.BREAK_GLASS: ":fire_extinguisher:",
}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def generic_json(notification: Notification, delivery_id: str) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "version": __version__,
        "id": delivery_id,
        **_redacted(notification.as_json()),
    }


def describe_failed_metrics(details: Mapping[str, Any]) -> list[str]:
    """'errorRate 0.2 > max 0.01 (n=40)' for each failed metric in `details`."""
    lines = []
    for metric in details.get("failed_metrics") or []:
        value = metric.get("value")
        shown = "n/a" if value is None else f"{value:.4g}"
        threshold = metric.get("threshold") or {}
        relation = ">" if threshold.get("bound") == "max" else "<"
        lines.append(
            f"{metric.get('metric')} {shown} {relation} {threshold.get('bound')} "
            f"{threshold.get('limit'):g} (n={metric.get('sample_size')})"
        )
    return lines


def slack_message(notification: Notification) -> dict[str, Any]:
    mark = _MARKS.get(notification.event, "")
    subject = f"*{notification.use_case}*: " if notification.use_case else ""
    headline = redact_text(f"{mark} {subject}{notification.event.value}: {notification.message}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline[:2900]}}
    ]
    failed = describe_failed_metrics(notification.details)
    if failed:
        text = "Failed: " + "; ".join(failed)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}})
    facts = [
        f"{key}: {value}"
        for key, value in notification.details.items()
        if isinstance(value, str | int | float) and key != "failed_metrics"
    ]
    context = " · ".join([notification.at_iso, *facts])
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": redact_text(context)[:2900]}]}
    )
    return {"text": headline, "blocks": blocks}


def render(notification: Notification, format: PayloadFormat, delivery_id: str) -> bytes:
    """The body to POST, as bytes (what the signature is computed over)."""
    if format is PayloadFormat.SLACK:
        payload = slack_message(notification)
    else:
        payload = generic_json(notification, delivery_id)
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
