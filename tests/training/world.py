"""A scratch repository with the shipped desired state, the tiny base and its own MLflow store."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.model import UseCase
from reconciler.tracking.mlflow_tracking import Tracking

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class World:
    repo: Path
    settings: Settings
    desired: DesiredState
    tracking: Tracking

    def use_case(self, name: str) -> UseCase:
        return self.desired.use_case(name)

    def identity(self, name: str) -> UseCaseIdentity:
        return self.desired.identities[name]

    def client(self):  # type: ignore[no-untyped-def]
        from mlflow import MlflowClient

        return MlflowClient(self.settings.tracking_uri, self.settings.registry_uri)


def make_world(root: Path, tiny_base_model: Path) -> World:
    repo = root / "repo"
    repo.mkdir(parents=True)
    for folder in ("desired_state", "policies"):
        shutil.copytree(PROJECT_ROOT / folder, repo / folder)
    (repo / "reconciler" / "spec").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "reconciler/spec/schema.json", repo / "reconciler/spec/schema.json")
    shutil.copytree(tiny_base_model, repo / "models" / "tiny-base")
    result = load_desired_state(repo)
    assert result.state is not None, [d.render() for d in result.diagnostics]
    settings = Settings(
        tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        registry_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        artifact_root=root / "mlruns" / "artifacts",
        state_dir=root / "state",
    )
    return World(repo, settings, result.state, Tracking(settings))
