"""Shared fixtures: the shipped example as a scratch repository, real MLflow stores."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.mlflow_process import mlflow_server
from bench.postgres_process import PostgresServer, postgres_server
from reconciler.state_store.database import StateDatabase

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Distilling the static embeddings takes minutes: every test (and every process a test starts,
# which inherits the environment) shares one cache instead of rebuilding it per state folder.
os.environ.setdefault(
    "RECONCILER_STATIC_EMBEDDINGS_DIR",
    str(Path.home() / ".cache" / "reconciler-tests" / "static-embeddings"),
)


@pytest.fixture
def shipped_repo(tmp_path: Path) -> Path:
    """A copy of the shipped desired_state/ and policies/ in a scratch folder."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for folder in ("desired_state", "policies"):
        shutil.copytree(PROJECT_ROOT / folder, repo / folder)
    # The committed schema is referenced by the shipped files' editor header.
    (repo / "reconciler" / "spec").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "reconciler/spec/schema.json", repo / "reconciler/spec/schema.json")
    return repo


@pytest.fixture
def sqlite_tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store with its schema migrated, made once per session: MLflow's
    migrations take seconds, a copy of their result takes milliseconds."""
    from mlflow import MlflowClient

    database = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{database}").search_registered_models()
    return database


@pytest.fixture
def fresh_sqlite_store(tmp_path: Path, empty_mlflow_store: Path) -> str:
    """The tracking URI of a new, empty, real MLflow sqlite store for this test."""
    database = tmp_path / "mlruns" / "mlflow.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_mlflow_store, database)
    return f"sqlite:///{database}"


@pytest.fixture
def isolated_env(
    tmp_path: Path, sqlite_tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment pointing the reconciler at a scratch MLflow store and state folder."""
    env = {
        "MLFLOW_TRACKING_URI": sqlite_tracking_uri,
        "RECONCILER_STATE_DIR": str(tmp_path / "state"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return env


MLFLOW_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session", params=MLFLOW_BACKENDS)
def mlflow_server_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 for the whole session, once over a sqlite backend
    store and once over PostgreSQL (its own database on the session's server), artifacts in
    a separate folder each time: the tests that use it run against both."""
    root = tmp_path_factory.mktemp(f"mlflow-server-{request.param}")
    backend = None
    if request.param == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        backend = postgres.create_database("mlflow_server")
    with mlflow_server(root, backend_store_uri=backend) as url:
        yield url


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT-2 base the shipped use cases name (models/tiny-base), built once."""
    from filelock import FileLock

    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    # Under pytest-xdist each worker is a process with a session of its own: they share one
    # build in the run's common temporary folder, the first to get there pretraining it.
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder = shared / "tiny-base-shared" / "tiny-base"
    with FileLock(str(shared / "tiny-base-shared.lock")):
        if not (folder / "config.json").is_file():
            texts = shipped_dataset_texts(PROJECT_ROOT / "desired_state" / "datasets")
            build_tiny_model(folder, extra_texts=texts)
    return folder


@pytest.fixture(scope="session", autouse=True)
def shipped_guardrail_models() -> None:
    """The static embeddings, the encoder's ONNX export and the hazard classifiers of the
    policies in policies/, built once per machine into the shared cache before any test needs
    them: a gateway or apply process a test starts then loads them in seconds instead of
    distilling, exporting and training during its start-up (a minute or more on a busy
    machine, past start-up timeouts)."""
    from filelock import FileLock

    from reconciler.guardrails.embeddings import default_embedder
    from reconciler.guardrails.engine import compile_policies
    from reconciler.spec.loader import load_desired_state

    cache = Path(os.environ["RECONCILER_STATIC_EMBEDDINGS_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / "shipped-guardrail-models.lock")):
        loaded = load_desired_state(PROJECT_ROOT)
        assert loaded.state is not None, [d.render() for d in loaded.diagnostics]
        compile_policies(loaded.state.policies, base_path=PROJECT_ROOT)
        default_embedder().encode(["The encoder's ONNX export, made once per machine."])


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (the system's binaries) for the whole session; started only
    when a test asks for it."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL (with its password) of a new, empty database of its own for this test; the
    database is dropped afterwards, sessions still open on it included."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres.create_database(name)
    try:
        yield url
    finally:
        StateDatabase.dispose_all()
        postgres.drop_database(name)


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state store's URL on each backend in turn: SQLite in the state folder (the
    default), then a PostgreSQL database of this test's own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def state_database(state_url: str) -> Iterator[StateDatabase]:
    database = StateDatabase(state_url)
    try:
        yield database
    finally:
        database.dispose()
