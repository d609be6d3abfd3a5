"""Webhook deliveries to a real HTTP receiver on 127.0.0.1, through the real httpx client:
signed with HMAC-SHA256 when a secret variable is named, retried with backoff, recorded when
they fail - and never in the way of the caller, whatever the receiver does."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.notifications.dispatcher import Dispatcher, RetrySettings
from reconciler.notifications.events import Notification
from reconciler.notifications.signing import SIGNATURE_HEADER, verify
from reconciler.notifications.webhooks import FAILURE_LOG, WebhookNotifier
from reconciler.spec.notifications import NotificationEvent, Webhook
from tests.stand_ins.receiver import Receiver, serve_receiver

SECRET = "whsec-test-value-0123456789"
QUICK = RetrySettings(attempts=3, first_wait=0.01, max_wait=0.05, timeout=5.0)
ROLLED_BACK = Notification(
    NotificationEvent.ROLLED_BACK,
    "npc-dialogue",
    "rolled back to 2; 3 rejected: analysis failed 2 times at 25%",
    1_800_000_000.0,
    {
        "candidate": "3",
        "champion": "2",
        "stage": "25%",
        "failed_metrics": [
            {
                "metric": "errorRate",
                "value": 0.2,
                "threshold": {"metric": "errorRate", "bound": "max", "limit": 0.01},
                "sample_size": 40,
                "outcome": "Failed",
            }
        ],
    },
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as served:
        yield served


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[Dispatcher]:
    made = Dispatcher(retry=QUICK, failure_log=tmp_path / FAILURE_LOG)
    yield made
    made.close(5)


def _webhook(**fields: object) -> Webhook:
    return Webhook.model_validate({"name": "ops", **fields})


def test_a_signed_notification_reaches_the_receiver_with_a_valid_signature(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    notifier = WebhookNotifier(
        [_webhook(url=receiver.url, secretEnv="OPS_WEBHOOK_SECRET")],
        dispatcher,
        environ={"OPS_WEBHOOK_SECRET": SECRET},
    )
    notifier.notify(ROLLED_BACK)
    assert dispatcher.flush(30)
    [delivery] = receiver.deliveries
    expected = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers[SIGNATURE_HEADER.lower()] == expected
    assert verify(SECRET, delivery.body, delivery.headers[SIGNATURE_HEADER.lower()])
    assert not verify("another secret", delivery.body, expected)
    body = json.loads(delivery.body)
    assert (body["event"], body["use_case"]) == ("rolled-back", "npc-dialogue")
    assert body["details"]["failed_metrics"][0]["value"] == 0.2
    assert body["id"] == delivery.headers["x-reconciler-delivery"]
    assert SECRET not in delivery.body.decode() + json.dumps(delivery.headers)
    assert dispatcher.delivered == 1 and dispatcher.failed == 0


def test_a_slack_webhook_gets_text_and_blocks_naming_the_failed_metric(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    notifier = WebhookNotifier(
        [_webhook(urlEnv="TEAM_SLACK_WEBHOOK_URL", format="slack")],
        dispatcher,
        environ={"TEAM_SLACK_WEBHOOK_URL": receiver.url},
    )
    notifier.notify(ROLLED_BACK)
    assert dispatcher.flush(30)
    [body] = receiver.bodies()
    assert body["text"].startswith(":rewind: *npc-dialogue*: rolled-back: rolled back to 2")
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert "Failed: errorRate 0.2 > max 0.01 (n=40)" in texts
    assert SIGNATURE_HEADER.lower() not in receiver.deliveries[0].headers  # no secret named


def test_a_receiver_failing_for_a_while_gets_the_delivery_on_a_retry(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    receiver.served.interruptions += [(503, {}), (429, {"Retry-After": "0"})]
    WebhookNotifier([_webhook(url=receiver.url)], dispatcher, environ={}).notify(ROLLED_BACK)
    assert dispatcher.flush(30)
    ids = {r.headers["x-reconciler-delivery"] for r in receiver.deliveries}
    assert len(receiver.deliveries) == 3 and len(ids) == 1  # the same delivery, three times
    assert (dispatcher.delivered, dispatcher.failed) == (1, 0)


def test_a_failed_delivery_is_recorded_without_its_url_or_secret(
    receiver: Receiver, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    receiver.status = 500
    secret_url = receiver.url + "/T000-secret-path"
    notifier = WebhookNotifier(
        [_webhook(urlEnv="OPS_URL", secretEnv="OPS_WEBHOOK_SECRET")],
        dispatcher,
        environ={"OPS_URL": secret_url, "OPS_WEBHOOK_SECRET": SECRET},
    )
    notifier.notify(ROLLED_BACK)
    assert dispatcher.flush(30)
    assert len(receiver.deliveries) == QUICK.attempts  # retried, then given up
    [failure] = dispatcher.recent_failures
    assert (failure.webhook, failure.event, failure.attempts) == ("ops", "rolled-back", 3)
    assert failure.error == "the receiver answered 500"
    recorded = (tmp_path / FAILURE_LOG).read_text()
    assert json.loads(recorded)["webhook"] == "ops"
    assert "secret-path" not in recorded and SECRET not in recorded


def test_a_refusal_is_final_and_not_retried(receiver: Receiver, dispatcher: Dispatcher) -> None:
    receiver.status = 404
    WebhookNotifier([_webhook(url=receiver.url)], dispatcher, environ={}).notify(ROLLED_BACK)
    assert dispatcher.flush(30)
    assert len(receiver.deliveries) == 1
    assert dispatcher.recent_failures[-1].error == "the receiver refused it: 404"


def test_an_unset_variable_is_a_recorded_failure_and_nothing_goes_unsigned(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    notifier = WebhookNotifier(
        [
            _webhook(url=receiver.url, secretEnv="OPS_WEBHOOK_SECRET"),
            _webhook(name="slack", urlEnv="TEAM_SLACK_WEBHOOK_URL"),
        ],
        dispatcher,
        environ={},
    )
    notifier.notify(ROLLED_BACK)
    assert dispatcher.flush(30)
    assert receiver.deliveries == []
    errors = sorted(f.error for f in dispatcher.recent_failures)
    assert errors[0].startswith("not sent: the variable OPS_WEBHOOK_SECRET (secretEnv) is not set")
    assert errors[1] == "not sent: the variable TEAM_SLACK_WEBHOOK_URL (urlEnv) is not set"


def test_webhooks_hear_only_their_events_and_use_cases(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    notifier = WebhookNotifier(
        [_webhook(url=receiver.url, events=["promoted"], useCases=["npc-dialogue"])],
        dispatcher,
        environ={},
    )
    for event, use_case in [
        (NotificationEvent.PROMOTED, "npc-dialogue"),
        (NotificationEvent.PROMOTED, "story-generation"),
        (NotificationEvent.STEP_PASSED, "npc-dialogue"),
    ]:
        notifier.notify(Notification(event, use_case, "m", 1_800_000_000.0))
    assert dispatcher.flush(30)
    assert [(b["event"], b["use_case"]) for b in receiver.bodies()] == [
        ("promoted", "npc-dialogue")
    ]


def test_a_hanging_receiver_never_holds_up_the_sender_and_a_full_queue_drops(
    receiver: Receiver, tmp_path: Path
) -> None:
    dispatcher = Dispatcher(capacity=2, retry=QUICK, failure_log=tmp_path / FAILURE_LOG)
    notifier = WebhookNotifier([_webhook(url=receiver.url)], dispatcher, environ={})
    receiver.hold()  # the receiver takes the first delivery and does not answer
    try:
        notifier.notify(ROLLED_BACK)
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
        for _ in range(3):  # two fill the queue behind the one in flight, the third is dropped
            notifier.notify(ROLLED_BACK)
        # Every notify returned while the receiver still holds the first delivery.
        assert not receiver.held.is_set() and len(receiver.deliveries) == 1
        assert dispatcher.dropped == 1
        assert dispatcher.recent_failures[-1].error == "dropped: the delivery queue is full"
    finally:
        receiver.release()
    assert dispatcher.flush(30)
    assert dispatcher.delivered == 3
    dispatcher.close(5)


def test_closing_gives_up_within_its_bound_on_a_receiver_that_never_answers(
    receiver: Receiver, tmp_path: Path
) -> None:
    patient = RetrySettings(attempts=5, first_wait=60, max_wait=60, timeout=1.0)
    dispatcher = Dispatcher(retry=patient, failure_log=tmp_path / FAILURE_LOG)
    receiver.status = 503
    WebhookNotifier([_webhook(url=receiver.url)], dispatcher, environ={}).notify(ROLLED_BACK)
    receiver.wait_for(lambda r: len(r.deliveries) == 1)
    dispatcher.close(0.5)  # the delivery now waits 60 s before its next attempt
    # Given up, not retried: the four attempts left were never made.
    assert len(receiver.deliveries) == 1
    assert dispatcher.failed == 1 and dispatcher.delivered == 0
