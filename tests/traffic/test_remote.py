"""The route table read from a running gateway, as a plan on a CI runner does.

A real gateway (in this process, over HTTP on 127.0.0.1) serves `GET /admin/traffic` from
its state folder; the planner, given `RECONCILER_GATEWAY_URL` and an empty state folder of
its own, must observe exactly what it would observe on the serving host.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.child_process import free_port
from reconciler.cli import main
from reconciler.errors import ReconcilerError
from reconciler.gateway.composition import build_gateway
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.server import GatewayServer
from reconciler.observe.state import Route
from reconciler.planning import make_plan
from reconciler.settings import Settings
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.remote import GatewayTrafficReader
from reconciler.traffic.store import TrafficStore, Writer

USE_CASES = ["npc-dialogue", "faction-decision", "story-generation"]


@pytest.fixture
def serving(shipped_repo: Path, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """The serving host: a state folder with routes (one use case drifted) and its gateway."""
    settings = Settings.from_environment(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
            "RECONCILER_STATE_DIR": str(tmp_path / "serving"),
        }
    )
    store = TrafficStore(StateDatabase.of(settings))
    store.write("npc-dialogue", [Route("1", 100)], writer=Writer.RECONCILER)
    store.write("npc-dialogue", [Route("1", 70), Route("2", 30)], writer=Writer.MANUAL)
    store.write(
        "faction-decision", [Route("3", 100), Route("4", 0, shadow=True)], writer=Writer.RECONCILER
    )
    config = GatewayConfig.from_settings(settings, port=free_port(), repo=shipped_repo)
    with GatewayServer(build_gateway(config)) as gateway:
        yield settings, gateway.url


def test_the_gateway_serves_the_same_snapshot_as_the_state_folder(
    serving: tuple[Settings, str],
) -> None:
    settings, url = serving
    remote = GatewayTrafficReader(url).snapshot(USE_CASES)
    local = TrafficStore(StateDatabase.of(settings)).snapshot(USE_CASES)
    assert dict(remote) == dict(local)
    assert remote["npc-dialogue"].drifted
    assert remote["npc-dialogue"].weight_of("2") == 30
    assert remote["story-generation"].routes == ()


def test_a_plan_away_from_the_serving_host_observes_the_live_routes(
    serving: tuple[Settings, str], shipped_repo: Path, tmp_path: Path
) -> None:
    settings, url = serving
    runner = Settings.from_environment(
        {
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "RECONCILER_STATE_DIR": str(tmp_path / "ci-runner"),
            "RECONCILER_GATEWAY_URL": url,
        }
    )
    on_host = make_plan(shipped_repo, None, settings)
    from_ci = make_plan(shipped_repo, None, runner)
    blind = make_plan(
        shipped_repo,
        None,
        Settings.from_environment(
            {
                "MLFLOW_TRACKING_URI": settings.tracking_uri,
                "RECONCILER_STATE_DIR": str(tmp_path / "ci-runner"),
            }
        ),
    )
    assert on_host.observed is not None and from_ci.observed is not None
    assert blind.observed is not None
    # A plan saved on CI is not refused as stale on the serving host, and vice versa.
    assert from_ci.observed.serial == on_host.observed.serial
    assert blind.observed.serial != on_host.observed.serial
    assert from_ci.observed.traffic_of("npc-dialogue").drifted
    # Applying reads the table it is about to write: its own state folder, never the URL.
    local = make_plan(shipped_repo, None, runner, local_traffic=True)
    assert local.observed is not None and local.observed.serial == blind.observed.serial
    assert not (tmp_path / "ci-runner" / "state.db").exists()


def test_an_unreachable_gateway_is_a_clear_error_without_credentials(
    shipped_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead = f"http://reader:s3cret-pass@127.0.0.1:{free_port()}"
    with pytest.raises(ReconcilerError, match="cannot read the route table from the gateway"):
        GatewayTrafficReader(dead).snapshot(USE_CASES)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RECONCILER_GATEWAY_URL", dead)
    code = main(["plan", "--repo", str(shipped_repo)])
    captured = capsys.readouterr()
    assert code == 1
    assert "cannot read the route table from the gateway at http://***@127.0.0.1" in captured.err
    assert "s3cret-pass" not in captured.out + captured.err
    assert "Traceback" not in captured.err


def test_a_url_that_is_not_a_gateway_is_refused(serving: tuple[Settings, str]) -> None:
    _, url = serving
    with pytest.raises(ReconcilerError, match="answered 404"):
        GatewayTrafficReader(f"{url}/no-such-prefix").snapshot(USE_CASES)
