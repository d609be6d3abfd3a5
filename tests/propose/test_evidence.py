"""Evidence before the PR: the candidate - a Hub model at its pinned revision, downloaded from
the stand-in Hub through huggingface_hub - runs through the use case's evaluation gate against
the live champion. A passing one is proposed with the figures; a failing one is not, and the
reasons are recorded. The live registry is only read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.settings import Settings
from reconciler.spec.loader import load_desired_state
from reconciler.training.registration import register_base
from tests.propose.conftest import Project
from tests.stand_ins.hub import HubModel, model_files, point_client_at, serve_hub

SHA = "c0ffee" + "0" * 34
USE_CASE = """\
apiVersion: reconciler/v1
kind: UseCase
metadata:
  name: hub-chat
spec:
  registeredModel: hub-chat
  acceptableModels:
    - {{source: local, path: models/tiny-base, revision: v1, license: mit}}
  training: {{method: none}}
  generation: {{maxNewTokens: 8, temperature: 0.0}}
  evaluation:
    prompts: desired_state/datasets/npc_dialogue/eval.jsonl
    thresholds:
      latencyP95Ms: {{max: 600000}}
{extra}
  discovery:
    sources:
      - huggingface: {{author: acme}}
"""
NEVER = """\
      assertionPassRate: {min: 1.0}
    assertions:
      - {name: says-the-password, type: contains, value: "swordfish-never-said"}
"""


def _setup(project: Project, catalog_model: Path, extra: str) -> None:
    shutil.copytree(catalog_model, project.repo / "models" / "tiny-base")
    (project.repo / "desired_state" / "hub-chat.yaml").write_text(USE_CASE.format(extra=extra))
    npc = project.repo / "desired_state" / "npc-dialogue.yaml"
    npc.write_text(npc.read_text().split("  discovery:\n")[0])  # only hub-chat discovers here
    project.commit_all("hub-chat looks for upgrades on the Hub")
    desired = load_desired_state(project.repo).state
    assert desired is not None
    use_case = desired.use_case("hub-chat")
    settings = Settings.from_environment(cwd=project.repo)
    version = register_base(
        use_case, desired.identities["hub-chat"], desired, repo=project.repo, settings=settings
    )
    import mlflow

    mlflow.MlflowClient(tracking_uri=settings.tracking_uri).set_registered_model_alias(
        "hub-chat", "champion", version
    )


@pytest.fixture
def hub(project: Project, catalog_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    model = HubModel(
        "acme/npc-hub",
        SHA,
        license="mit",
        files=model_files(catalog_model),
        parameters={"F32": 100_000},
    )
    with serve_hub([model]) as served:
        point_client_at(monkeypatch, served.url, tmp_path / "hf-cache")
        yield served


def _versions(project: Project) -> int:
    import mlflow

    settings = Settings.from_environment(cwd=project.repo)
    client = mlflow.MlflowClient(
        tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri
    )
    return len(client.search_model_versions("name = 'hub-chat'"))


def test_a_passing_candidate_is_proposed_with_the_evidence(
    capsys: pytest.CaptureFixture[str],
    project: Project,
    catalog_model: Path,
    hub,  # type: ignore[no-untyped-def]
) -> None:
    _setup(project, catalog_model, extra="")
    code = main(["propose", "--repo", str(project.repo)])
    out = capsys.readouterr().out
    assert code == 0, out
    [pull] = project.state.pulls
    body = pull["body"]
    assert "Candidate against the live champion v1" in body
    assert "| p95 latency (ms) |" in body and "≤ 600000 | ✅ pass |" in body
    assert "| behaviour similarity |" in body
    assert "**Verdict: passed**" in body
    downloads = [p for p in hub.paths("GET") if "/resolve/" in p]
    assert any(f"/acme/npc-hub/resolve/{SHA}/" in p for p in downloads), "the pinned revision"
    assert _versions(project) == 1, "the live registry was only read"


def test_a_failing_candidate_is_not_proposed_and_the_reasons_are_kept(
    capsys: pytest.CaptureFixture[str],
    project: Project,
    catalog_model: Path,
    hub,  # type: ignore[no-untyped-def]
) -> None:
    _setup(project, catalog_model, extra=NEVER)
    code = main(["propose", "--repo", str(project.repo)])
    out = capsys.readouterr().out
    assert code == 0, out
    expected = "hub-chat: huggingface:acme/npc-hub@c0ffee000000 is not proposed: "
    assert expected + "assertionPassRate 0.000 < min 1" in out
    assert project.state.pulls == []
    assert "**Not proposed (pre-evaluation)**" in project.state.issues[0]["body"]
    assert _versions(project) == 1
