"""The tracking adapter against a real sqlite store: artifact location, lookup by tags."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.settings import Settings
from reconciler.tracking.mlflow_tracking import Tracking


def settings_in(root: Path) -> Settings:
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    return Settings(uri, uri, root / "mlruns" / "artifacts", root / "state")


def test_experiments_keep_artifacts_under_the_artifact_root(tmp_path: Path) -> None:
    tracking = Tracking(settings_in(tmp_path))
    with tracking.run("demo", "first") as run:
        run.log_dict({"a": 1}, "note.json")
        run.log_metrics({"loss": 1.5}, step=1)
    files = list((tmp_path / "mlruns" / "artifacts" / "demo").rglob("note.json"))
    assert files and json.loads(files[0].read_text()) == {"a": 1}


def test_find_version_matches_all_tags_and_prefers_the_newest(tmp_path: Path) -> None:
    tracking = Tracking(settings_in(tmp_path))
    versions = []
    for attempt in ("1", "2"):
        with tracking.run("demo", f"attempt-{attempt}") as run:
            run.log_dict({"attempt": attempt}, "provider/provider.json")
            uri = tracking.artifact_uri(run.run_id, "provider")
            versions.append(
                tracking.register(
                    "demo",
                    model_uri=uri,
                    run_id=run.run_id,
                    tags={"reconciler.key": "k", "reconciler.training.attempt": attempt},
                    description="d",
                ).version
            )
    assert tracking.find_version("demo", {"reconciler.key": "k"}).version == versions[1]  # type: ignore[union-attr]
    first = tracking.find_version(
        "demo", {"reconciler.key": "k", "reconciler.training.attempt": "1"}
    )
    assert first is not None and first.version == versions[0]
    assert tracking.find_version("demo", {"reconciler.key": "other"}) is None
    assert tracking.find_version("missing", {"reconciler.key": "k"}) is None
