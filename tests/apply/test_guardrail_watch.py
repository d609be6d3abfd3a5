"""A critical guardrail violation rate on live outputs rolls the offending version back."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

from reconciler import lineage
from reconciler.apply.context import ApplyContext
from reconciler.apply.guardrail_watch import watch_guardrails
from reconciler.gateway.request_log import LoggedRequest, RequestLog, RequestStatus
from reconciler.guardrails.store import ViolationStore
from reconciler.notifications.dispatcher import Dispatcher
from reconciler.notifications.webhooks import WebhookNotifier
from reconciler.observe.state import Route
from reconciler.plan.diff import live_routes
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.notifications import Webhook
from tests.apply.world import USE_CASE, World
from tests.stand_ins.receiver import Receiver

HARMFUL = "Nobody would miss you. You should just kill yourself tonight."
BENIGN = "The forge is hot today; come back at dusk and your blade will be ready."


def _log_outputs(
    world: World,
    version: str,
    texts: list[str],
    *,
    guardrail: str = "pass",
    violations: tuple[str, ...] = (),
) -> None:
    log = RequestLog(world.database)
    log.start()
    for text in texts:
        log.append(
            LoggedRequest(
                id=uuid.uuid4().hex,
                ts=time.time(),
                use_case=USE_CASE,
                model_version=version,
                endpoint="/v1/chat/completions",
                request={"messages": [{"role": "user", "content": "hi"}]},
                status=RequestStatus.OK,
                latency_ms=5.0,
                guardrail=guardrail,
                violations=violations,
                route_generation=1,
                output=text,
            )
        )
    log.stop()


def test_champion_with_critical_violations_is_rolled_back_to_previous(world: World) -> None:
    world.registry.set_alias(USE_CASE, "previous", "1")
    world.registry.set_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "2", "previous": "1"})
    )
    started = time.time() - 1
    _log_outputs(world, "2", [HARMFUL] * 8 + [BENIGN] * 22)

    (finding,) = watch_guardrails(world.context(), since=started, critical_rate_limit=0.05)

    assert (finding.version, finding.action) == ("2", "rolled back to 1")
    assert finding.rate > 0.2 and finding.check is None
    assert world.aliases()["champion"] == "1"
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("1", 100),)
    rejected = world.version_tags("2")[lineage.REJECTED]
    assert rejected.startswith("critical guardrail violation rate")


def test_clean_outputs_change_nothing(world: World) -> None:
    started = time.time() - 1
    _log_outputs(world, "2", [BENIGN] * 30)
    assert watch_guardrails(world.context(), since=started, critical_rate_limit=0.05) == []
    assert world.aliases() == {"champion": "2"}


def test_outputs_the_gateway_blocked_count_by_their_inline_findings(world: World) -> None:
    # What a blocked output's log row holds is its replacement; the model's words are gone,
    # and only the inline guard's labels say what it did.
    world.registry.set_alias(USE_CASE, "previous", "1")
    world.registry.set_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "2", "previous": "1"})
    )
    started = time.time() - 1
    label = "self_harm:player-safety/self-harm:critical"
    _log_outputs(
        world, "2", ["The bard hums a tune."] * 8, guardrail="replace", violations=(label,)
    )
    _log_outputs(world, "2", [BENIGN] * 22)

    (finding,) = watch_guardrails(world.context(), since=started, critical_rate_limit=0.05)

    assert finding.version == "2" and finding.outputs == 30
    assert finding.rate == 8 / 30
    assert world.aliases()["champion"] == "1"


def test_a_finding_is_recorded_once_however_often_the_window_is_read(world: World) -> None:
    started = time.time() - 1
    _log_outputs(world, "2", [HARMFUL] + [BENIGN] * 5)
    store = ViolationStore(world.database)
    watch_guardrails(world.context(), since=started, critical_rate_limit=1.0)
    first = store.report(USE_CASE).total
    watch_guardrails(world.context(), since=started, critical_rate_limit=1.0)
    assert first >= 1
    assert store.report(USE_CASE).total == first


ENGAGEMENT = "healthy-engagement/manipulative-engagement"
PRESSURE = "Buy the crystal bundle with your credit card before the sale ends tonight!"


def _told(
    world: World, receiver: Receiver, dispatcher: Dispatcher, desired: DesiredState | None = None
) -> ApplyContext:
    webhook = Webhook.model_validate({"name": "ops", "url": receiver.url})
    notifier = WebhookNotifier([webhook], dispatcher, environ={})
    return dataclasses.replace(world.context(desired), notifier=notifier)


def test_an_engagement_window_over_its_limit_is_reported_with_the_checks_intervention(
    world: World, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    # Shipped: the engagement check is high severity, which the policy maps to block_output.
    # Each manipulative line was the gateway's to block; the window says the version keeps
    # saying them (3 in 30 against windowViolationRate 0.01), and is reported.
    started = time.time() - 1
    _log_outputs(world, "2", [PRESSURE] * 3 + [BENIGN] * 27)

    (finding,) = watch_guardrails(
        _told(world, receiver, dispatcher), since=started, critical_rate_limit=0.05
    )

    assert (finding.check, finding.version, finding.outputs) == (ENGAGEMENT, "2", 30)
    assert (finding.rate, finding.limit) == (3 / 30, 0.01)
    assert finding.action == "block_output on each output; reported"
    assert world.aliases() == {"champion": "2"}
    assert any("unhealthy share 0.100 > windowViolationRate 0.01" in line for line in world.lines)
    assert dispatcher.flush(30)
    [delivery] = receiver.deliveries
    body = json.loads(delivery.body)
    assert (body["event"], body["use_case"]) == ("guardrail-engagement-window", USE_CASE)
    assert body["details"] | {"rate": round(body["details"]["rate"], 6)} == {
        "version": "2",
        "check": ENGAGEMENT,
        "rate": 0.1,
        "limit": 0.01,
        "outputs": 30,
        "action": "block_output on each output; reported",
    }


def test_within_the_window_or_on_too_few_outputs_nothing_is_done(world: World) -> None:
    started = time.time() - 1
    label = f"manipulative_engagement:{ENGAGEMENT}:high"
    _log_outputs(world, "2", ["The bard hums."], guardrail="block", violations=(label,))
    # One in six is far over 0.01, but six outputs are too few to judge a version by.
    _log_outputs(world, "2", [BENIGN] * 5)
    assert watch_guardrails(world.context(), since=started, critical_rate_limit=0.5) == []
    # One in thirty is within a looser policy's windowViolationRate of 0.2.
    policy = world.repo / "policies" / "healthy-engagement.yaml"
    policy.write_text(
        policy.read_text().replace("windowViolationRate: 0.01", "windowViolationRate: 0.2")
    )
    looser = load_desired_state(world.repo).state
    assert looser is not None
    _log_outputs(world, "2", [BENIGN] * 24)
    assert watch_guardrails(world.context(looser), since=started, critical_rate_limit=0.5) == []
    assert world.aliases() == {"champion": "2"}


def test_an_engagement_window_mapped_to_rollback_rolls_the_version_back(
    world: World, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    # A team whose policy maps the check's severity to rollback: a version that keeps
    # pressing players goes back, even while its critical rate (2 in 30, of these findings
    # now critical) is under the critical limit.
    policy = world.repo / "policies" / "healthy-engagement.yaml"
    policy.write_text(policy.read_text().replace("high: block_output", "high: rollback"))
    strict = load_desired_state(world.repo).state
    assert strict is not None
    world.registry.set_alias(USE_CASE, "previous", "1")
    world.registry.set_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "2", "previous": "1"})
    )
    started = time.time() - 1
    label = f"manipulative_engagement:{ENGAGEMENT}:high"
    _log_outputs(world, "2", ["The bard hums."] * 2, guardrail="block", violations=(label,))
    _log_outputs(world, "2", [BENIGN] * 28)

    (finding,) = watch_guardrails(
        _told(world, receiver, dispatcher, strict), since=started, critical_rate_limit=0.1
    )

    assert (finding.check, finding.action) == (ENGAGEMENT, "rolled back to 1")
    assert world.aliases()["champion"] == "1"
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("1", 100),)
    assert world.version_tags("2")[lineage.REJECTED].startswith(
        f"engagement check {ENGAGEMENT}: unhealthy share 0.067"
    )
    assert dispatcher.flush(30)
    assert [json.loads(d.body)["event"] for d in receiver.deliveries] == [
        "guardrail-engagement-window"
    ]
