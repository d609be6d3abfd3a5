"""A critical guardrail violation rate on live outputs rolls the offending version back."""

from __future__ import annotations

import json
import time
import uuid

from reconciler import lineage
from reconciler.apply.guardrail_watch import watch_guardrails
from reconciler.gateway.request_log import LoggedRequest, RequestLog, RequestStatus
from reconciler.guardrails.store import ViolationStore
from reconciler.observe.state import Route
from reconciler.plan.diff import live_routes
from tests.apply.world import USE_CASE, World

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
    assert finding.critical_rate > 0.2
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
    assert finding.critical_rate == 8 / 30
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
