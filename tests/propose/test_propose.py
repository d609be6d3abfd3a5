"""`reconciler propose` end to end on real git (a working clone and a bare remote) and a
stand-in GitHub REST API: one PR per upgrade, updated never duplicated, closed = ignored, the
limit, grouping, soak, dry run, and no token anywhere it could leak."""

from __future__ import annotations

import difflib
import re
import subprocess
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.propose.branches import GROUP_BRANCH, read_marker
from tests.propose.conftest import (
    TOKEN,
    Project,
    add_catalog_model,
    git,
    with_discovery,
)

NPC_FILE = "desired_state/npc-dialogue.yaml"


def propose(capsys: pytest.CaptureFixture[str], project: Project, *args: str) -> tuple[int, str]:
    code = main(["propose", "--repo", str(project.repo), "--no-evaluate", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def only_insertions(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails if anything else changed."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(True), b=after.splitlines(True))
    added = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        assert tag in ("equal", "insert"), f"{tag}: {before.splitlines(True)[i1:i2]}"
        if tag == "insert":
            added += after.splitlines(True)[j1:j2]
    return added


def branch_file(project: Project, branch: str, path: str) -> str:
    return git(project.remote, "show", f"{branch}:{path}")


def test_dry_run_prints_the_diff_and_body_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    before = (project.repo / NPC_FILE).read_text()
    code, out = propose(capsys, project, "--dry-run")
    assert code == 0, out
    assert "+    - source: local" in out
    assert "+      path: models/catalog/npc-v2" in out
    assert "## Model upgrade proposed by the reconciler" in out
    assert "Pre-evaluation was skipped (`--no-evaluate`)" in out
    assert "What merging will do" in out and "register" in out
    assert (project.repo / NPC_FILE).read_text() == before
    assert git(project.repo, "status", "--porcelain") == ""
    assert list(project.remote_branches()) == ["main"]
    assert project.github.requests == [], "a dry run does not ask the forge"


def test_one_pr_per_upgrade_then_updated_never_duplicated(
    capsys: pytest.CaptureFixture[str], project: Project, catalog_model: Path
) -> None:
    before = (project.repo / NPC_FILE).read_text()
    code, out = propose(capsys, project)
    assert code == 0, out
    assert len(project.state.pulls) == 1
    pull = project.state.pulls[0]
    branch = pull["head"]["ref"]
    assert branch == "reconciler/npc-dialogue/local-models-catalog-npc-v2"
    assert pull["base"]["ref"] == "main"
    assert [label["name"] for label in pull["labels"]] == ["model-upgrade"]
    assert pull["title"].startswith("Upgrade npc-dialogue to local:models/catalog/npc-v2@")
    [proposed] = read_marker(pull["body"])
    assert (proposed.use_case, proposed.id) == ("npc-dialogue", "models/catalog/npc-v2")
    # The commit on the branch changes only the edited node: lines are inserted, none changed.
    after = branch_file(project, branch, NPC_FILE)
    added = only_insertions(before, after)
    assert added[0] == "    - source: local\n"
    assert "      path: models/catalog/npc-v2\n" in added
    changed = git(project.remote, "diff", "--name-only", "main", branch).split()
    assert changed == [NPC_FILE]
    assert git(project.repo, "status", "--porcelain") == "", "the working tree is untouched"
    [dashboard] = project.state.issues
    assert dashboard["title"] == "Model upgrades"
    assert f"#{pull['number']}" in dashboard["body"]
    first_sha = project.remote_branches()[branch]
    first_body = str(pull["body"])

    # Same candidate again: nothing pushed, nothing edited, no second PR.
    requests_before = len(project.github.requests)
    code, out = propose(capsys, project)
    assert code == 0, out
    assert "unchanged PR #1" in out
    assert len(project.state.pulls) == 1
    assert project.remote_branches()[branch] == first_sha
    writes = [r for r in project.github.requests[requests_before:] if r.method != "GET"]
    assert writes == []

    # A new revision of the catalog model: the same PR is force-pushed and edited.
    readme = project.repo / "models" / "catalog" / "npc-v2" / "README.md"
    readme.write_text(readme.read_text() + "\nRetrained.\n")
    code, out = propose(capsys, project)
    assert code == 0, out
    assert "updated PR #1" in out
    assert len(project.state.pulls) == 1
    assert project.remote_branches()[branch] != first_sha
    assert git(project.remote, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert project.state.pulls[0]["body"] != first_body
    assert [c["issue"] for c in project.state.comments] == [1]


def test_a_pr_closed_without_merging_ignores_the_candidate_until_reopened(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    propose(capsys, project)
    project.state.close(1)
    code, out = propose(capsys, project)
    assert code == 0, out
    assert "npc-dialogue: no eligible candidate outranks the current base" in out
    assert len(project.state.pulls) == 1
    dashboard = project.state.issues[0]["body"]
    assert "**Ignored**" in dashboard and "PR #1 was closed without merging" in dashboard
    project.state.reopen(1)
    code, out = propose(capsys, project)
    assert "PR #1" in out and "no eligible candidate" not in out
    assert "**Ignored**" not in project.state.issues[0]["body"]


def test_the_limit_leaves_upgrades_pending(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    path = project.repo / NPC_FILE
    path.write_text(path.read_text().replace("limit: 5", "limit: 0"))
    project.commit_all("no open proposals allowed")
    code, out = propose(capsys, project)
    assert code == 0, out
    assert "is pending: limit of 0 open proposal PRs reached" in out
    assert project.state.pulls == []
    assert list(project.remote_branches()) == ["main"]
    assert "**Pending**" in project.state.issues[0]["body"]


def test_group_puts_use_cases_into_one_pr(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    grouped = project.repo / NPC_FILE
    grouped.write_text(grouped.read_text().replace("limit: 5,", "limit: 5, group: true,"))
    with_discovery(
        project.repo / "desired_state" / "faction-decision.yaml",
        "  discovery:\n    sources: [{local: {path: models/catalog}}]\n"
        "    proposals: {group: true, labels: [model-upgrade, factions]}\n",
    )
    project.commit_all("group the upgrades")
    code, out = propose(capsys, project)
    assert code == 0, out
    [pull] = project.state.pulls
    assert pull["head"]["ref"] == GROUP_BRANCH
    assert pull["title"] == "Upgrade models of 2 use cases"
    assert {p.use_case for p in read_marker(pull["body"])} == {"npc-dialogue", "faction-decision"}
    changed = git(project.remote, "diff", "--name-only", "main", GROUP_BRANCH).split()
    assert sorted(changed) == ["desired_state/faction-decision.yaml", NPC_FILE]
    assert sorted(label["name"] for label in pull["labels"]) == ["factions", "model-upgrade"]


def test_a_candidate_still_soaking_is_not_proposed(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    path = project.repo / NPC_FILE
    path.write_text(path.read_text() + "    minimumReleaseAge: 3d\n")
    project.commit_all("soak new models for three days")
    code, out = main(["discover", "--repo", str(project.repo)]), capsys.readouterr().out
    assert code == 0
    assert "younger than minimumReleaseAge 3d (soaking)" in out
    code, out = propose(capsys, project)
    assert "no eligible candidate outranks the current base" in out
    assert project.state.pulls == []


def test_a_candidate_id_is_untrusted_text(
    capsys: pytest.CaptureFixture[str], project: Project, catalog_model: Path
) -> None:
    add_catalog_model(project.repo, catalog_model, name="Evil`|<b>@everyone..lock")
    (project.repo / "models" / "catalog" / "npc-v2" / "README.md").write_text(
        "---\nlicense: gpl-3.0\n---\n"
    )
    code, out = propose(capsys, project)
    assert code == 0, out
    [pull] = project.state.pulls
    branch = pull["head"]["ref"]
    assert branch == "reconciler/npc-dialogue/local-models-catalog-evil-b-everyone"
    subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], check=True)
    body = pull["body"]
    # Outside code fences and code spans (where markdown, HTML and mentions are inert) the
    # untrusted id does not appear at all.
    prose = re.sub(r"(`{3,})text\n.*?\n\1", "", body, flags=re.S)
    prose = re.sub(r"(`{3,})diff\n.*?\n\1", "", prose, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    assert "<b>" not in prose and "@everyone" not in prose
    assert "`local:models/catalog/Evil'\\|<b>@everyone..lock@" in body
    added = branch_file(project, branch, NPC_FILE)
    assert '      path: "models/catalog/Evil`|<b>@everyone..lock"\n' in added


def test_no_token_in_any_request_body_git_object_or_output(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    _, first = propose(capsys, project)
    readme = project.repo / "models" / "catalog" / "npc-v2" / "README.md"
    readme.write_text(readme.read_text() + "\nagain\n")
    _, second = propose(capsys, project)
    assert project.github.requests, "the forge was used"
    for request in project.github.requests:
        assert TOKEN.encode() not in request.body
        assert TOKEN not in request.path
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=project.remote,
        check=True,
        capture_output=True,
    ).stdout
    assert objects and TOKEN.encode() not in objects
    assert all(TOKEN not in name for name in project.remote_branches())
    config = (project.repo / ".git" / "config").read_text()
    assert TOKEN not in config
    assert TOKEN not in first + second


def test_a_failing_push_is_that_use_cases_error_and_exit_1(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    git(project.repo, "remote", "set-url", "origin", str(project.remote) + "-gone")
    code, out = propose(capsys, project)
    assert code == 1
    assert "npc-dialogue: error: git " in out and "failed for branch" in out
    assert TOKEN not in out
    assert project.state.pulls == []


def test_uncommitted_changes_to_the_file_are_never_proposed(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    path = project.repo / NPC_FILE
    path.write_text(path.read_text().replace("temperature: 0.8", "temperature: 0.9"))
    code, out = propose(capsys, project)
    assert code == 1
    assert f"npc-dialogue: error: {NPC_FILE} has uncommitted changes; commit or stash" in out
    assert project.state.pulls == [] and list(project.remote_branches()) == ["main"]
