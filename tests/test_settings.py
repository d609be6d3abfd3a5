"""Where things go: the embedded defaults, and a store moved by MLFLOW_TRACKING_URI."""

from __future__ import annotations

from pathlib import Path

from reconciler.settings import Settings, redact_uri


def test_defaults_live_under_the_working_folder(tmp_path: Path) -> None:
    settings = Settings.from_environment({}, cwd=tmp_path)
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert settings.registry_uri == settings.tracking_uri
    assert settings.artifact_root == tmp_path / "mlruns" / "artifacts"
    assert settings.state_dir == tmp_path / ".reconciler"
    assert settings.model_cache_dir == tmp_path / ".reconciler" / "model-cache"


def test_a_sqlite_store_elsewhere_keeps_its_artifacts_beside_it(tmp_path: Path) -> None:
    store = tmp_path / "elsewhere" / "registry.db"
    settings = Settings.from_environment(
        {"MLFLOW_TRACKING_URI": f"sqlite:///{store}", "RECONCILER_STATE_DIR": "state"},
        cwd=tmp_path / "project",
    )
    assert settings.artifact_root == tmp_path / "elsewhere" / "artifacts"
    assert settings.state_dir == tmp_path / "project" / "state"


def test_a_relative_sqlite_store_is_relative_to_the_working_folder(tmp_path: Path) -> None:
    settings = Settings.from_environment(
        {"MLFLOW_TRACKING_URI": "sqlite:///stores/m.db"}, cwd=tmp_path
    )
    assert settings.artifact_root == tmp_path / "stores" / "artifacts"


def test_credentials_in_uris_are_never_printed() -> None:
    assert redact_uri("https://user:s3cret@mlflow.example/") == "https://***@mlflow.example/"
    assert redact_uri("sqlite:///mlruns/mlflow.db") == "sqlite:///mlruns/mlflow.db"
