"""`kind: Notifications`: a valid document loads with the desired state and does not touch
any use case's identity (webhooks say who hears about a rollout, not what it rolls out)."""

from __future__ import annotations

from pathlib import Path

from reconciler.spec.loader import load_desired_state
from reconciler.spec.notifications import NotificationEvent, PayloadFormat

DOCUMENT = """\
apiVersion: reconciler/v1
kind: Notifications
metadata: {name: team-alerts}
spec:
  webhooks:
    - name: ops
      url: https://alerts.example/hooks/reconciler
      secretEnv: OPS_WEBHOOK_SECRET
      events: [rolled-back, promoted]
      useCases: [npc-dialogue]
    - name: team-slack
      urlEnv: TEAM_SLACK_WEBHOOK_URL
      format: slack
"""


def test_a_notifications_document_loads_and_leaves_identities_alone(shipped_repo: Path) -> None:
    before = load_desired_state(shipped_repo).state
    assert before is not None and before.notifications == ()
    (shipped_repo / "desired_state" / "notifications.yaml").write_text(DOCUMENT)
    after = load_desired_state(shipped_repo).state
    assert after is not None
    [document] = after.notifications
    ops, slack = document.spec.webhooks
    assert (ops.name, ops.secret_env, ops.format) == ("ops", "OPS_WEBHOOK_SECRET", "json")
    assert slack.format is PayloadFormat.SLACK and slack.url_env == "TEAM_SLACK_WEBHOOK_URL"
    assert ops.hears(NotificationEvent.ROLLED_BACK, "npc-dialogue")
    assert not ops.hears(NotificationEvent.ROLLED_BACK, "story-generation")
    assert not ops.hears(NotificationEvent.STEP_PASSED, "npc-dialogue")
    assert slack.hears(NotificationEvent.DRIFT_DETECTED, "story-generation")
    assert dict(after.identities) == dict(before.identities)
    assert after.source.digest != before.source.digest
