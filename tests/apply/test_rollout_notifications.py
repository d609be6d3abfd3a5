"""The rollout's events reach a real webhook receiver - started, each step passed, promoted;
rolled back with the failed metric, its value and threshold; paused for lack of data - and
drift is told once when it appears. A receiver that hangs never holds up the apply."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from reconciler import lineage
from reconciler.apply.context import ApplyContext
from reconciler.apply.plan_runner import apply_plan
from reconciler.controller import reconcile_once
from reconciler.health import Health
from reconciler.notifications.dispatcher import Dispatcher
from reconciler.notifications.drift import DriftMemory
from reconciler.notifications.webhooks import WebhookNotifier
from reconciler.observe.observer import observe
from reconciler.observe.state import Route
from reconciler.plan.diff import diff
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState
from reconciler.spec.notifications import Webhook
from reconciler.traffic.store import Writer
from tests.apply.world import USE_CASE, ErrorRule, World
from tests.stand_ins.receiver import Receiver

SECRET = "whsec-rollout-test-0123456789"


def _told(world: World, receiver: Receiver, dispatcher: Dispatcher) -> ApplyContext:
    webhook = Webhook.model_validate(
        {"name": "ops", "url": receiver.url, "secretEnv": "OPS_WEBHOOK_SECRET"}
    )
    notifier = WebhookNotifier([webhook], dispatcher, environ={"OPS_WEBHOOK_SECRET": SECRET})
    return dataclasses.replace(world.context(), notifier=notifier)


def _apply(world: World, context: ApplyContext) -> Health:
    observed = observe(world.desired, world.registry, world.traffic)
    return apply_plan(diff(world.desired, observed, only=[USE_CASE]), context).health


def test_a_good_rollout_is_told_step_by_step(
    world: World,
    served_traffic: Callable[[ErrorRule], None],
    receiver: Receiver,
    dispatcher: Dispatcher,
) -> None:
    served_traffic(lambda version, weight: False)
    assert _apply(world, _told(world, receiver, dispatcher)) is Health.HEALTHY
    assert dispatcher.flush(60)
    assert receiver.events() == [
        "rollout-started",
        *["step-passed"] * 5,
        "promoted",
    ]
    started, *_, promoted = receiver.bodies()
    assert started["details"]["candidate"] == "3" and started["details"]["champion"] == "2"
    assert promoted["message"].startswith("3 promoted to champion (by analysis)")
    assert {b["use_case"] for b in receiver.bodies()} == {USE_CASE}


def test_a_rollback_is_told_with_the_failed_metric_value_and_threshold(
    world: World,
    served_traffic: Callable[[ErrorRule], None],
    receiver: Receiver,
    dispatcher: Dispatcher,
) -> None:
    served_traffic(lambda version, weight: version == "3" and weight >= 25)
    assert _apply(world, _told(world, receiver, dispatcher)) is Health.DEGRADED
    assert dispatcher.flush(60)
    events = receiver.events()
    assert events[:2] == ["rollout-started", "step-passed"]
    assert events[-1] == "rolled-back" and "analysis-failed" in events
    rolled_back = receiver.bodies()[-1]["details"]
    assert rolled_back["failed_at_stage"] == "25%"
    [failed] = rolled_back["failed_metrics"]
    assert failed["metric"] == "errorRate" and failed["value"] > 0.01
    assert failed["threshold"] == {"metric": "errorRate", "bound": "max", "limit": 0.01}
    assert failed["sample_size"] >= 20


def test_a_step_without_traffic_is_told_as_paused_for_lack_of_data(
    world: World, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    assert _apply(world, _told(world, receiver, dispatcher)) is Health.SUSPENDED
    assert dispatcher.flush(60)
    assert receiver.events() == ["rollout-started", "paused-no-data"]
    assert "no evidence by the progress deadline" in receiver.bodies()[-1]["message"]


def test_a_hanging_receiver_does_not_hold_up_the_rollout(
    world: World,
    served_traffic: Callable[[ErrorRule], None],
    receiver: Receiver,
    dispatcher: Dispatcher,
) -> None:
    served_traffic(lambda version, weight: False)
    receiver.hold()
    try:
        health = _apply(world, _told(world, receiver, dispatcher))
        # The whole rollout finished while the receiver still sat on its first delivery.
        assert health is Health.HEALTHY and world.aliases()["champion"] == "3"
        assert len(receiver.deliveries) == 1 and not receiver.held.is_set()
    finally:
        receiver.release()
    assert dispatcher.flush(60)
    assert receiver.events()[-1] == "promoted"


def test_drift_is_told_once_when_it_appears(
    world: World, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    (world.repo / "desired_state" / "faction-decision.yaml").unlink()
    npc = world.repo / "desired_state" / "npc-dialogue.yaml"
    npc.write_text(
        npc.read_text().replace(
            "{automated: true, selfHeal: true}", "{automated: true, selfHeal: false}"
        )
    )
    # Converged on 3 (2 previous); then someone moves the champion back by hand.
    client = world.registry.client
    client.set_registered_model_alias(USE_CASE, "champion", "3")
    client.set_registered_model_alias(USE_CASE, "previous", "2")
    client.set_registered_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "3", "previous": "2"})
    )
    world.traffic.write(USE_CASE, [Route("3", 100)], writer=Writer.RECONCILER)
    client.set_registered_model_alias(USE_CASE, "champion", "2")
    settings = Settings(
        tracking_uri=world.tracking_uri,
        registry_uri=world.tracking_uri,
        artifact_root=world.state_dir / "artifacts",
        state_dir=world.state_dir,
    )

    def make(repo: Path, desired: DesiredState, settings: Settings) -> ApplyContext:
        return dataclasses.replace(
            _told(world, receiver, dispatcher), desired=desired, drive_rollouts=False
        )

    memory = DriftMemory()
    for _ in range(3):
        report = reconcile_once(world.repo, None, settings, make_context=make, drift=memory)
        assert report.error is None, report
    assert dispatcher.flush(60)
    drift = [b for b in receiver.bodies() if b["event"] == "drift-detected"]
    assert len(drift) == 1, receiver.events()
    assert drift[0]["details"]["self_heal"] is False
    assert "selfHeal is off" in drift[0]["message"]
