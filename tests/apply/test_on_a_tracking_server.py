"""plan, apply and lineage against a real `mlflow server`, on a sqlite and a PostgreSQL backend.

The tracking server is the session's (`mlflow_server_url`, once per backend, artifacts in a
folder of their own); a registered base carries its lineage tags and its files, a plan reads
them back, and a rollout moves aliases and tags through the server's REST API - the same on
both backends. Each test deletes the registered model it made, so the next finds none.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from reconciler import lineage
from reconciler.apply.journal import Cause
from reconciler.apply.plan_runner import apply_plan
from reconciler.health import Health
from reconciler.observe.state import Route
from reconciler.plan.planned import live_routes
from reconciler.planning import make_plan
from reconciler.settings import Settings
from tests.apply.conftest import seeded_world
from tests.apply.test_rollout import never_fails, plan_now
from tests.apply.world import USE_CASE, ErrorRule, World

pytestmark = pytest.mark.integration


@pytest.fixture
def server_client(mlflow_server_url: str) -> Iterator[MlflowClient]:
    client = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    yield client
    if client.search_registered_models(filter_string=f"name = '{USE_CASE}'"):
        client.delete_registered_model(USE_CASE)


@pytest.fixture
def world(
    shipped_repo: Path, tmp_path: Path, mlflow_server_url: str, server_client: MlflowClient
) -> Iterator[World]:
    """The apply suite's world, its registry on the tracking server (state on SQLite)."""
    made = seeded_world(
        shipped_repo, tmp_path, mlflow_server_url, f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    )
    yield made
    made.database.dispose()


def test_a_rollout_moves_aliases_and_tags_through_the_server(
    world: World, served_traffic: Callable[[ErrorRule], None], server_client: MlflowClient
) -> None:
    served_traffic(never_fails)
    plan = plan_now(world)
    assert [c.action.value for c in plan.changes] == ["shift", "promote"]

    assert apply_plan(plan, world.context()).health is Health.HEALTHY, world.lines

    model = server_client.get_registered_model(USE_CASE)
    assert model.aliases == {"champion": "3", "previous": "2"}
    assert json.loads(model.tags[lineage.APPLIED_ALIASES]) == {"champion": "3", "previous": "2"}
    assert live_routes(world.traffic.read(USE_CASE)) == (Route("3", 100),)
    (change,) = world.journal.history(USE_CASE)
    assert (change.version, change.previous, change.cause) == ("3", "2", Cause.COMMIT)
    assert not plan_now(world).has_changes


def test_a_rejected_candidate_is_tagged_on_the_server_and_not_planned_again(
    world: World, served_traffic: Callable[[ErrorRule], None], server_client: MlflowClient
) -> None:
    served_traffic(lambda version, weight: version == "3")
    assert apply_plan(plan_now(world), world.context()).health is Health.DEGRADED

    tags = server_client.get_model_version(USE_CASE, "3").tags
    assert "errorRate" in tags[lineage.REJECTED]
    assert tags[lineage.REJECTED_DIGEST] == world.desired.identities[USE_CASE].digest
    assert server_client.get_registered_model(USE_CASE).aliases == {"champion": "2"}
    assert "shift" not in [c.action.value for c in plan_now(world).changes]


def test_a_registered_base_keeps_its_lineage_and_files_on_the_server(
    shipped_repo: Path,
    tmp_path: Path,
    tiny_base_model: Path,
    mlflow_server_url: str,
    server_client: MlflowClient,
) -> None:
    from mlflow.artifacts import download_artifacts

    from reconciler.spec.loader import load_desired_state
    from reconciler.training.registration import register_base

    shutil.copytree(tiny_base_model, shipped_repo / "models" / "tiny-base")
    desired = load_desired_state(shipped_repo).state
    assert desired is not None
    settings = Settings(
        tracking_uri=mlflow_server_url,
        registry_uri=mlflow_server_url,
        artifact_root=tmp_path / "unused-artifacts",  # the server decides where they go
        state_dir=tmp_path / "state",
    )
    use_case, identity = desired.use_case(USE_CASE), desired.identities[USE_CASE]
    before = make_plan(shipped_repo, None, settings, only=[USE_CASE]).plan
    assert before is not None and before.changes[0].action.value == "register"

    version = register_base(use_case, identity, desired, repo=shipped_repo, settings=settings)
    again = register_base(use_case, identity, desired, repo=shipped_repo, settings=settings)

    assert again == version  # found by its key on the server: registered once
    tags = server_client.get_model_version(USE_CASE, version).tags
    assert tags[lineage.KEY] == identity.base_key
    assert tags[lineage.ROLE] == "base"
    assert tags[lineage.BASE_MODEL] == "models/tiny-base"
    assert tags[lineage.USE_CASE] == USE_CASE
    files = Path(
        download_artifacts(
            f"models:/{USE_CASE}/{version}",
            dst_path=str(tmp_path / "downloaded"),
            tracking_uri=mlflow_server_url,
            registry_uri=mlflow_server_url,
        )
    )
    assert any(path.name == "config.json" for path in files.rglob("*"))
    assert not settings.artifact_root.exists()  # the files went to the server's artifact root
    after = make_plan(shipped_repo, None, settings, only=[USE_CASE]).plan
    assert after is not None
    assert "register" not in [c.action.value for c in after.changes]
