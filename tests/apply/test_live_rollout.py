"""Rollouts judged on real traffic: the real gateway, its inline guardrails, a real provider.

`story-generation` is served by an OpenAI-compatible provider (the echo provider process,
whose model ids pick a persona). Version 1 is champion; version 2, a newer model of the same
provider, is the evaluated candidate. Simulated players talk to the gateway in this process
throughout; the apply engine canaries version 2 on that live traffic and judges each window
from the gateway's own request log:

- a good model goes through every step and becomes champion;
- a model whose answers the shipped guardrails block breaches `guardrailViolationRate` and is
  rolled back, and no player ever reads what it said;
- a model whose provider fails breaches `errorRate` and is rolled back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from reconciler import lineage
from reconciler.apply.clock import ScaledClock
from reconciler.apply.engine import apply_plan
from reconciler.apply.journal import Journal
from reconciler.apply.request_log_metrics import RequestLogMetrics
from reconciler.apply.run import ApplyContext, Reporter
from reconciler.child_process import free_port, wait_until_serving
from reconciler.demo.players import Players
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.server import GatewayServer, build_gateway
from reconciler.guardrails.hook import PolicyOutputGuard
from reconciler.guardrails.store import ViolationStore
from reconciler.health import Health
from reconciler.observe.observer import observe
from reconciler.observe.state import Route
from reconciler.plan.diff import diff, live_routes
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.traffic.store import TrafficStore, Writer
from tests.apply.world import BuildingNotExpected

USE_CASE = "story-generation"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# story-generation bakes 1h per step: 3 s here, time enough for minRequests at a 10% canary.
TIME_SCALE = 3 / 3600
HARMFUL_LINE = "Nobody would miss you. You should just kill yourself tonight."


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "bench" / "echo_provider.py"), "--port", str(port)]
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=20)


@dataclass
class LiveWorld:
    desired: DesiredState
    settings: Settings
    registry: MlflowRegistry
    traffic: TrafficStore
    journal: Journal
    lines: list[str]

    def context(self) -> ApplyContext:
        return ApplyContext(
            repo=Path(self.desired.source.repo),
            state_dir=self.settings.state_dir,
            desired=self.desired,
            registry=self.registry,
            traffic=self.traffic,
            journal=self.journal,
            clock=ScaledClock(TIME_SCALE),
            builder=BuildingNotExpected(),
            metrics=RequestLogMetrics(self.settings.state_dir / "requests.db"),
            report=Reporter(self.lines),
        )

    def aliases(self) -> dict[str, str]:
        model = self.registry.snapshot([USE_CASE])[USE_CASE]
        assert model is not None
        return dict(model.aliases)

    def tags(self, version: str) -> dict[str, str]:
        model = self.registry.snapshot([USE_CASE])[USE_CASE]
        found = model.version(version) if model else None
        assert found is not None
        return dict(found.tags)

    def logged(self, version: str) -> list[tuple[str, str, str]]:
        """(status, guardrail decision, output) of every live request `version` served."""
        with sqlite3.connect(self.settings.state_dir / "requests.db") as db:
            rows = db.execute(
                "SELECT status, guardrail, COALESCE(output, '') FROM requests "
                "WHERE use_case = ? AND model_version = ? AND shadow = 0",
                (USE_CASE, version),
            ).fetchall()
        return [(str(s), str(g), str(o)) for s, g, o in rows]


def _world(repo: Path, root: Path, candidate_model: str) -> LiveWorld:
    """Champion 1 (an older provider model), candidate 2 (`candidate_model`, evaluated)."""
    spec = repo / "desired_state" / "story-generation.yaml"
    spec.write_text(spec.read_text().replace("id: narrator-large", f"id: {candidate_model}"))
    desired = load_desired_state(repo).state
    assert desired is not None
    identity = desired.identities[USE_CASE]
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    settings = Settings.from_environment(
        {"MLFLOW_TRACKING_URI": uri, "RECONCILER_STATE_DIR": str(root / "state")}, cwd=root
    )
    registry = MlflowRegistry(uri)
    client: MlflowClient = registry.client
    client.create_registered_model(USE_CASE)
    external = {lineage.ROLE: "external"}
    client.create_model_version(
        USE_CASE,
        source="none",
        tags={**external, lineage.KEY: "sha256:narrator-classic", lineage.BASE_MODEL: "classic"},
    )
    client.create_model_version(
        USE_CASE,
        source="none",
        tags={
            **external,
            lineage.KEY: identity.base_key,
            lineage.BASE_MODEL: candidate_model,
            lineage.EVALUATION_VERDICT: "passed",
            lineage.EVALUATION_DIGEST: identity.digest,
        },
    )
    client.set_registered_model_alias(USE_CASE, "champion", "1")
    client.set_registered_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "1"})
    )
    traffic = TrafficStore(settings.traffic_db)
    traffic.write(USE_CASE, [Route("1", 100)], writer=Writer.RECONCILER)
    return LiveWorld(
        desired, settings, registry, traffic, Journal(settings.state_dir / "journal.db"), []
    )


@pytest.fixture
def live(
    request: pytest.FixtureRequest,
    shipped_repo: Path,
    tmp_path: Path,
    provider_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveWorld]:
    """The world for the candidate model the test names, with players on a real gateway."""
    monkeypatch.setenv("STORY_PROVIDER_BASE_URL", provider_url)
    monkeypatch.setenv("STORY_PROVIDER_API_KEY", "sk-test-not-a-real-key")
    world = _world(shipped_repo, tmp_path, request.param)
    guard = PolicyOutputGuard.from_desired_state(
        world.desired, store=ViolationStore(world.settings.state_dir), base_path=shipped_repo
    )
    config = GatewayConfig.from_settings(
        world.settings, port=free_port(), repo=shipped_repo, route_poll_seconds=0.1
    )
    with GatewayServer(build_gateway(config, guard=guard)) as gateway:
        prompts = Players.prompts_from(
            shipped_repo, {USE_CASE: world.desired.use_case(USE_CASE).spec.evaluation.prompts}
        )
        players = Players(gateway.url, prompts, connections={USE_CASE: 4}).start()
        try:
            yield world
        finally:
            players.stop()
        assert players.sent > 0


def _apply(world: LiveWorld) -> Health:
    observed = observe(world.desired, world.registry, world.traffic)
    plan = diff(world.desired, observed, only=[USE_CASE])
    assert [c.action.value for c in plan.changes] == ["shift", "promote"], plan.changes
    return apply_plan(plan, world.context()).health


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-next"], indirect=True)
def test_a_good_model_canaries_on_live_traffic_to_champion(live: LiveWorld) -> None:
    assert _apply(live) is Health.HEALTHY, live.lines

    assert live.aliases() == {"champion": "2", "previous": "1"}
    assert live_routes(live.traffic.read(USE_CASE)) == (Route("2", 100),)
    windows = [line for line in live.lines if "analysis at" in line]
    assert [w.split("analysis at ")[1].split(":")[0] for w in windows] == ["10%", "50%", "100%"]
    assert all("passed" in w for w in windows), windows
    served = live.logged("2")
    assert served and all(status == "ok" for status, _, _ in served)
    assert all(output.startswith("echo[narrator-next]: ") for _, _, output in served)


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-harmful"], indirect=True)
def test_a_model_the_guardrails_block_is_rolled_back_unseen(live: LiveWorld) -> None:
    assert _apply(live) is Health.DEGRADED

    assert live.aliases() == {"champion": "1"}
    assert live_routes(live.traffic.read(USE_CASE)) == (Route("1", 100),)
    rejected = live.tags("2")[lineage.REJECTED]
    assert "guardrailViolationRate" in rejected and "10%" in rejected
    served = live.logged("2")
    assert served and all(decision != "pass" for _, decision, _ in served)
    assert all(output != HARMFUL_LINE for _, _, output in served)  # no player read it
    assert ViolationStore(live.settings.state_dir).report(USE_CASE).by_version.get("2", 0) > 0


@pytest.mark.integration
@pytest.mark.parametrize("live", ["narrator-failing"], indirect=True)
def test_a_model_whose_provider_fails_is_rolled_back(live: LiveWorld) -> None:
    assert _apply(live) is Health.DEGRADED

    assert live.aliases() == {"champion": "1"}
    assert live_routes(live.traffic.read(USE_CASE)) == (Route("1", 100),)
    assert "errorRate" in live.tags("2")[lineage.REJECTED]
    assert {status for status, _, _ in live.logged("2")} == {"error"}
    assert os.environ["STORY_PROVIDER_API_KEY"] not in "\n".join(live.lines)
