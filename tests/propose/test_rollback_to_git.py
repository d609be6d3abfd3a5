"""An automatic rollback is written back to git: `propose` opens a PR adding the rejected
version to `spec.rejected`; merging it leaves the planner treating that candidate as rejected,
and a second run neither duplicates the PR nor pushes again."""

from __future__ import annotations

import pytest

from reconciler import lineage
from reconciler.cli import main
from reconciler.plan.model import Action
from reconciler.planning import make_plan
from reconciler.settings import Settings
from reconciler.spec.loader import load_desired_state
from reconciler.tracking.mlflow_tracking import Tracking
from tests.propose.conftest import Project, git

NPC_FILE = "desired_state/npc-dialogue.yaml"


def _register(tracking: Tracking, name: str, tags: dict[str, str]) -> str:
    with tracking.run(name, "stand-in version", tags={}) as run:
        run.log_dict({"model": "stand-in"}, "model/description.json")
        uri = tracking.artifact_uri(run.run_id, "model")
        version = tracking.register(
            name, model_uri=uri, run_id=run.run_id, tags=tags, description="test"
        )
    return version.version


@pytest.fixture
def rolled_back(project: Project) -> str:
    """npc-dialogue: v1 (base) is champion; v2 (the trained candidate) was rolled back."""
    desired = load_desired_state(project.repo).state
    assert desired is not None
    identity = desired.identities["npc-dialogue"]
    tracking = Tracking(Settings.from_environment(cwd=project.repo))
    _register(tracking, "npc-dialogue", {lineage.KEY: identity.base_key, lineage.ROLE: "base"})
    _register(
        tracking,
        "npc-dialogue",
        {
            lineage.KEY: identity.target_key,
            lineage.ROLE: "trained",
            lineage.BASE_MODEL: "local:models/tiny-base",
            lineage.REJECTED: "canary analysis failed: errorRate 0.2 > 0.01 at 25%",
            lineage.REJECTED_DIGEST: identity.digest,
        },
    )
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.settings.tracking_uri)
    client.set_registered_model_alias("npc-dialogue", "champion", "1")
    return identity.target_key


def test_a_rollback_becomes_a_pr_recording_it_in_spec_rejected(
    capsys: pytest.CaptureFixture[str], project: Project, rolled_back: str
) -> None:
    (project.repo / "models" / "catalog" / "npc-v2" / "README.md").write_text(
        "---\nlicense: gpl-3.0\n---\n"
    )
    code = main(["propose", "--repo", str(project.repo), "--no-evaluate"])
    out = capsys.readouterr().out
    assert code == 0, out
    [pull] = project.state.pulls
    branch = pull["head"]["ref"]
    assert branch == "reconciler/rejected/npc-dialogue"
    assert pull["title"] == "Record the rollback of npc-dialogue v2 in spec.rejected"
    assert [label["name"] for label in pull["labels"]] == ["model-upgrade"]
    edited = git(project.remote, "show", f"{branch}:{NPC_FILE}")
    assert f'    - key: "{rolled_back}"\n      version: "2"\n' in edited
    assert "canary analysis failed" in edited
    assert "Record automatic rollbacks" in pull["body"]
    assert "**Rejected**" in project.state.issues[0]["body"]

    # Merge it: the planner then treats the candidate as rejected, even after a later edit.
    git(project.repo, "fetch", "-q", "origin", branch)
    git(project.repo, "merge", "-q", "--ff-only", "FETCH_HEAD")
    path = project.repo / NPC_FILE
    path.write_text(
        path.read_text().replace("behaviorSimilarity: {min: 0.5}", "behaviorSimilarity: {min: 0.6}")
    )
    made = make_plan(project.repo, None, Settings.from_environment(cwd=project.repo))
    assert made.plan is not None
    changes = made.plan.changes_for("npc-dialogue")
    assert not any(c.action in (Action.TRAIN, Action.EVALUATE) for c in changes)
    assert any(c.action is Action.NOOP and "recorded in spec.rejected" in c.reason for c in changes)

    # Recorded in git now: nothing more to propose for it.
    code = main(["propose", "--repo", str(project.repo), "--no-evaluate"])
    assert code == 0
    assert len(project.state.pulls) == 1


def test_a_second_run_updates_the_same_rollback_pr_without_pushing(
    capsys: pytest.CaptureFixture[str], project: Project, rolled_back: str
) -> None:
    (project.repo / "models" / "catalog" / "npc-v2" / "README.md").write_text(
        "---\nlicense: gpl-3.0\n---\n"
    )
    main(["propose", "--repo", str(project.repo), "--no-evaluate"])
    sha = project.remote_branches()["reconciler/rejected/npc-dialogue"]
    body = str(project.state.pulls[0]["body"])
    main(["propose", "--repo", str(project.repo), "--no-evaluate"])
    capsys.readouterr()
    assert len(project.state.pulls) == 1
    assert project.remote_branches()["reconciler/rejected/npc-dialogue"] == sha
    assert project.state.pulls[0]["body"] == body
