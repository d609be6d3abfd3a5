"""The MLflow adapter against real stores: sqlite, and a real `mlflow server` over HTTP."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from bench.http_counter import CountingProxy
from reconciler import lineage
from reconciler.errors import RegistryError
from reconciler.registry.mlflow_registry import MlflowRegistry


def _populate(client: MlflowClient, name: str, versions: int) -> None:
    client.create_registered_model(
        name, tags={lineage.APPLIED_ALIASES: json.dumps({"champion": "2"})}
    )
    for i in range(versions):
        client.create_model_version(
            name, source=f"s3://reconciler-tests/{name}/{i}", tags={lineage.KEY: f"sha256:k{i}"}
        )
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "previous", "1")


def _check_snapshot(registry: MlflowRegistry, name: str, versions: int) -> None:
    snapshot = registry.snapshot([name, f"{name}-absent"])
    assert snapshot[f"{name}-absent"] is None
    model = snapshot[name]
    assert model is not None
    assert dict(model.aliases) == {"champion": "2", "previous": "1"}
    assert model.applied_aliases() == {"champion": "2"}
    assert sorted(int(v.version) for v in model.versions) == list(range(1, versions + 1))
    third = model.version("3")
    assert third is not None and third.tag(lineage.KEY) == "sha256:k2" and third.ready
    assert model.find_by_key("sha256:k2") == third


def test_snapshot_from_sqlite_store(sqlite_tracking_uri: str) -> None:
    registry = MlflowRegistry(sqlite_tracking_uri)
    _populate(registry.client, "npc-dialogue", 4)
    _check_snapshot(registry, "npc-dialogue", 4)


@pytest.mark.integration
def test_snapshot_from_tracking_server(mlflow_server_url: str) -> None:
    registry = MlflowRegistry(mlflow_server_url)
    _populate(registry.client, "server-model", 5)
    _check_snapshot(registry, "server-model", 5)


@pytest.mark.integration
def test_requests_grow_with_models_not_versions(mlflow_server_url: str) -> None:
    writer = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    _populate(writer, "few-versions", 3)
    _populate(writer, "many-versions", 40)
    with CountingProxy(mlflow_server_url) as proxy:
        registry = MlflowRegistry(proxy.url)
        registry.snapshot(["few-versions"])
        few = proxy.total
        proxy.reset()
        registry.snapshot(["many-versions"])
        many = proxy.total
    assert few == many <= 2


def test_unreachable_registry_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    registry = MlflowRegistry("http://user:s3cret@127.0.0.1:9")
    with pytest.raises(RegistryError) as caught:
        registry.snapshot(["npc-dialogue"])
    message = str(caught.value)
    assert "cannot read the model registry at http://***@127.0.0.1:9" in message
    assert "s3cret" not in message


@pytest.mark.integration
def test_versions_of_many_models_come_in_batches(mlflow_server_url: str) -> None:
    writer = MlflowClient(tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url)
    names = [f"batch-{i:02d}" for i in range(30)]
    for i, name in enumerate(names):
        writer.create_registered_model(name)
        for v in range(1 + i % 3):
            writer.create_model_version(
                name, source=f"s3://reconciler-tests/{name}/{v}", tags={lineage.KEY: f"{name}-{v}"}
            )
    with CountingProxy(mlflow_server_url) as proxy:
        snapshot = MlflowRegistry(proxy.url).snapshot([*names, "batch-absent"])
        # One read per model (aliases) + one version search per batch of 25 present models.
        assert proxy.total == 31 + 2
    assert snapshot["batch-absent"] is None
    for i, name in enumerate(names):
        model = snapshot[name]
        assert model is not None
        assert [v.tag(lineage.KEY) for v in model.versions] == [
            f"{name}-{v}" for v in range(1 + i % 3)
        ]
