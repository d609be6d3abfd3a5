"""A project as `reconciler propose` meets it: a git working clone of desired state with a
bare remote, a local catalog holding a newer tiny model, a stand-in GitHub REST API, and a
scratch MLflow store and state folder."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.gateway.tiny_model import build_tiny_gpt2
from tests.stand_ins.github import GitHubState, serve_github
from tests.stand_ins.http import Served

TOKEN = "ghs_stand-in-token-0123456789abcdef"
DISCOVERY = """\
  discovery:
    sources:
      - local: {path: models/catalog}
    proposals: {limit: 5, labels: [model-upgrade]}
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="session")
def catalog_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("catalog-model") / "tiny")


def add_catalog_model(
    repo: Path, source: Path, name: str = "npc-v2", license_: str = "apache-2.0"
) -> Path:
    folder = repo / "models" / "catalog" / name
    shutil.copytree(source, folder)
    (folder / "README.md").write_text(
        f"---\nlicense: {license_}\npipeline_tag: text-generation\n---\n# {name}\n"
    )
    return folder


def with_discovery(path: Path, block: str = DISCOVERY) -> None:
    """Replace the file's discovery section (the last one of a shipped file) with `block`."""
    text = path.read_text().split("  discovery:\n")[0]
    path.write_text(text.rstrip("\n") + "\n" + block)


@dataclass
class Project:
    repo: Path
    remote: Path
    github: Served
    state: GitHubState

    def commit_all(self, message: str) -> None:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        git(self.repo, "push", "-q", "origin", "main")

    def remote_branches(self) -> dict[str, str]:
        out = git(
            self.remote, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"
        )
        pairs = [line.split(" ", 1) for line in out.splitlines() if line]
        return {name: sha for name, sha in pairs}


@pytest.fixture
def project(
    tmp_path: Path, catalog_model: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    repo = tmp_path / "work"
    repo.mkdir()
    for folder in ("desired_state", "policies"):
        shutil.copytree(PROJECT_ROOT / folder, repo / folder)
    (repo / "reconciler" / "spec").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "reconciler/spec/schema.json", repo / "reconciler/spec/schema.json")
    with_discovery(repo / "desired_state" / "npc-dialogue.yaml")
    add_catalog_model(repo, catalog_model)
    (repo / ".gitignore").write_text("models/\nmlruns/\n.reconciler/\n")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test Person")
    git(repo, "config", "user.email", "person@example.com")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "desired state")
    git(repo, "push", "-q", "origin", "main")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("RECONCILER_GATEWAY_URL", raising=False)
    with serve_github(token=TOKEN) as (served, state):
        monkeypatch.setenv("GITHUB_API_URL", served.url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/game")
        yield Project(repo, remote, served, state)
