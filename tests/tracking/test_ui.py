"""`reconciler ui`: which server it starts for a store, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.settings import Settings
from reconciler.tracking.ui import RemoteStoreError, ui_server


def test_a_sqlite_store_is_served_with_its_own_artifact_folder(tmp_path: Path) -> None:
    settings = Settings.from_environment(
        {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"}, cwd=tmp_path
    )
    server = ui_server(settings, host="127.0.0.1", port=5123)
    argv = list(server.argv)
    assert argv[1:4] == ["-m", "mlflow", "server"]
    assert argv[argv.index("--backend-store-uri") + 1] == settings.tracking_uri
    root = argv[argv.index("--default-artifact-root") + 1]
    assert root == (tmp_path / "store" / "artifacts").resolve().as_uri()
    assert argv[argv.index("--port") + 1] == "5123"
    assert server.url == "http://127.0.0.1:5123"


def test_the_default_store_is_the_demos(tmp_path: Path) -> None:
    server = ui_server(Settings.from_environment({}, cwd=tmp_path))
    argv = list(server.argv)
    assert argv[argv.index("--backend-store-uri") + 1] == (
        f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    )
    assert server.url == "http://127.0.0.1:5000"


def test_a_tracking_server_is_not_served_again_and_its_credentials_never_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = "https://ci:s3cret@mlflow.example"
    with pytest.raises(RemoteStoreError, match="tracking server"):
        ui_server(Settings.from_environment({"MLFLOW_TRACKING_URI": uri}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["ui"]) == 1
    err = capsys.readouterr().err
    assert "https://***@mlflow.example is a tracking server: open its own UI" in err
    assert "s3cret" not in err
