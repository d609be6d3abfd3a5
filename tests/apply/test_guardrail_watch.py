"""A critical guardrail violation rate on live outputs rolls the offending version back."""

from __future__ import annotations

import json
import time
import uuid

from reconciler import lineage
from reconciler.apply.guardrail_watch import watch_guardrails
from reconciler.gateway.request_log import LoggedRequest, RequestLog, RequestStatus
from reconciler.observe.state import Route
from reconciler.plan.diff import live_routes
from tests.apply.world import USE_CASE, World

HARMFUL = "Nobody would miss you. You should just kill yourself tonight."
BENIGN = "The forge is hot today; come back at dusk and your blade will be ready."


def _log_outputs(world: World, version: str, texts: list[str]) -> None:
    log = RequestLog(world.log_path)
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
                guardrail="pass",
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
