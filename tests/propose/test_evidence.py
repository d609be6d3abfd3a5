"""Evidence before the PR: the candidate - a Hub model at its pinned revision, downloaded from
the stand-in Hub through huggingface_hub, or a provider's model over its OpenAI-compatible API -
runs through the use case's evaluation gate against the live champion. A passing one is
proposed with the figures (a paid model's cost from the usage the provider reported); a
failing one is not, and the reasons are recorded. The live registry is only read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.settings import Settings
from reconciler.spec.loader import load_desired_state
from reconciler.training.registration import register_base
from tests.propose.conftest import Project, git
from tests.stand_ins.hub import HubModel, model_files, point_client_at, serve_hub
from tests.stand_ins.providers import openrouter_model, serve_openai_compatible

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
PROVIDER_SOURCE = (
    "openaiCompatible: {{baseUrlEnv: STORY_PROVIDER_BASE_URL, apiKeyEnv: STORY_PROVIDER_API_KEY}}"
)
OVER_AN_API = USE_CASE.replace("huggingface: {{author: acme}}", PROVIDER_SOURCE)
PROVIDER_KEY = "sk-or-v1-stand-in-provider-key-0123456789"
NEVER = """\
      assertionPassRate: {min: 1.0}
    assertions:
      - {name: says-the-password, type: contains, value: "swordfish-never-said"}
"""


def _setup(project: Project, catalog_model: Path, extra: str, template: str = USE_CASE) -> None:
    shutil.copytree(catalog_model, project.repo / "models" / "tiny-base")
    (project.repo / "desired_state" / "hub-chat.yaml").write_text(template.format(extra=extra))
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


@pytest.mark.parametrize("reports_usage", [True, False], ids=["usage", "no-usage"])
def test_a_provider_model_is_evaluated_over_its_api_and_priced(
    capsys: pytest.CaptureFixture[str],
    project: Project,
    catalog_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    reports_usage: bool,
) -> None:
    """Discovered on an OpenAI-compatible provider, pre-evaluated over its API, proposed with
    the evidence; the cost comes from the usage the provider reported, or is an estimate and
    says so."""
    model = openrouter_model("acme/story-1", prompt="0.000001", completion="0.000002")
    with serve_openai_compatible([model], api_key=PROVIDER_KEY, usage=reports_usage) as provider:
        monkeypatch.setenv("STORY_PROVIDER_BASE_URL", provider.url + "/v1")
        monkeypatch.setenv("STORY_PROVIDER_API_KEY", PROVIDER_KEY)
        _setup(project, catalog_model, extra="", template=OVER_AN_API)
        code = main(["propose", "--repo", str(project.repo)])
    out = capsys.readouterr().out
    assert code == 0, out
    chats = [r for r in provider.requests if r.path == "/v1/chat/completions"]
    assert chats, "the candidate was evaluated over its API"
    assert {r.json()["model"] for r in chats} == {"acme/story-1"}
    assert {r.headers["authorization"] for r in chats} == {f"Bearer {PROVIDER_KEY}"}
    [pull] = project.state.pulls
    body = pull["body"]
    assert "acme/story-1" in body
    assert "Candidate against the live champion v1" in body
    assert "**Verdict: passed**" in body
    if reports_usage:
        # The stand-in reports 3 prompt tokens and one per word of its 6-word answer:
        # 1000 * (3 * $0.000001 + 6 * $0.000002) = $0.015.
        assert "| cost per 1,000 requests (USD, measured) | 0.0150 |" in body
        assert (
            "Cost basis: measured: 3.0 prompt + 6.0 completion tokens per request, as the "
            f"provider reported over {len(chats)} requests." in body
        )
    else:
        assert "| cost per 1,000 requests (USD, estimate) |" in body
        assert "Cost basis: estimate: prompt tokens as characters / 4, completion at " in body
        assert "maxNewTokens (8); no measured usage." in body
    branch = pull["head"]["ref"]
    proposed = git(project.remote, "show", f"{branch}:desired_state/hub-chat.yaml")
    assert "acme/story-1" in proposed and "STORY_PROVIDER_BASE_URL" in proposed
    assert PROVIDER_KEY not in proposed and PROVIDER_KEY not in body and PROVIDER_KEY not in out
    assert all(PROVIDER_KEY.encode() not in r.body for r in project.github.requests)
    assert _versions(project) == 1, "the live registry was only read"
