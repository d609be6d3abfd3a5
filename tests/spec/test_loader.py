"""Loading from a folder and from a git ref (through git's object database)."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from reconciler.errors import SourceError
from reconciler.spec.loader import load_desired_state


def _commit_all(repo: git.Repo, message: str) -> str:
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo.head.commit.hexsha


@pytest.fixture
def git_repo(shipped_repo: Path) -> git.Repo:
    repo = git.Repo.init(shipped_repo, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.com")
    _commit_all(repo, "initial desired state")
    return repo


def test_shipped_desired_state_loads(shipped_repo: Path) -> None:
    result = load_desired_state(shipped_repo)
    assert result.diagnostics == ()
    assert result.state is not None
    assert [u.name for u in result.state.use_cases] == [
        "faction-decision",
        "npc-dialogue",
        "story-generation",
    ]
    assert {p.name for p in result.state.policies} == {
        "player-safety",
        "healthy-engagement",
        "game-hazards",
    }
    assert result.state.source.commit is None
    assert result.state.source.digest.startswith("sha256:")


def test_folder_in_git_records_head_commit_and_dirtiness(git_repo: git.Repo) -> None:
    root = Path(git_repo.working_tree_dir or "")
    clean = load_desired_state(root).state
    assert clean is not None
    assert clean.source.commit == git_repo.head.commit.hexsha
    assert clean.source.dirty is False
    (root / "desired_state" / "note.txt").write_text("uncommitted")
    dirty = load_desired_state(root).state
    assert dirty is not None and dirty.source.dirty is True


def test_ref_reads_the_commit_not_the_working_tree(git_repo: git.Repo) -> None:
    root = Path(git_repo.working_tree_dir or "")
    first = git_repo.head.commit.hexsha
    path = root / "desired_state" / "story-generation.yaml"
    path.write_text(path.read_text().replace("bakeTime: 1h", "bakeTime: 2h"))
    second = _commit_all(git_repo, "slower rollout")
    # An uncommitted, broken edit in the working tree must not matter to --ref.
    path.write_text("this: [is not valid")

    at_first = load_desired_state(root, "main~1").state
    at_head = load_desired_state(root, "main").state
    at_sha = load_desired_state(root, second).state
    assert at_first is not None and at_head is not None and at_sha is not None
    assert at_first.source.commit == first
    assert at_head.source.commit == second and at_head.source.ref == "main"
    assert at_first.use_case("story-generation").spec.rollout.bake_time == "1h"
    assert at_head.use_case("story-generation").spec.rollout.bake_time == "2h"
    assert at_first.source.digest != at_head.source.digest
    assert at_head.source.digest == at_sha.source.digest
    assert load_desired_state(root).state is None  # the working tree is broken


def test_same_content_gives_same_digest_from_folder_and_ref(git_repo: git.Repo) -> None:
    root = Path(git_repo.working_tree_dir or "")
    from_folder = load_desired_state(root).state
    from_ref = load_desired_state(root, "HEAD").state
    assert from_folder is not None and from_ref is not None
    assert from_folder.source.digest == from_ref.source.digest
    assert from_folder.identities == from_ref.identities


def test_ref_checks_datasets_in_the_commit(git_repo: git.Repo) -> None:
    root = Path(git_repo.working_tree_dir or "")
    git_repo.index.remove(["desired_state/datasets/story_generation/eval.jsonl"])
    git_repo.index.commit("drop a dataset")
    # Still on disk, but not in the commit: --ref must notice.
    result = load_desired_state(root, "HEAD")
    assert result.state is None
    assert any("does not exist" in d.message for d in result.diagnostics)


def test_ref_from_a_clone_of_a_bare_remote(git_repo: git.Repo, tmp_path: Path) -> None:
    bare = git.Repo.clone_from(git_repo.working_tree_dir, tmp_path / "remote.git", bare=True)
    clone = git.Repo.clone_from(bare.git_dir, tmp_path / "clone")
    result = load_desired_state(Path(clone.working_tree_dir or ""), "origin/main")
    assert result.state is not None
    assert result.state.source.commit == git_repo.head.commit.hexsha


def test_dataset_change_changes_the_training_key(shipped_repo: Path) -> None:
    before = load_desired_state(shipped_repo).state
    data = shipped_repo / "desired_state/datasets/npc_dialogue/initial.jsonl"
    data.write_text(data.read_text() + '{"prompt": "Hi", "response": "Hello"}\n')
    after = load_desired_state(shipped_repo).state
    assert before is not None and after is not None
    old, new = before.identities["npc-dialogue"], after.identities["npc-dialogue"]
    assert old.base_key == new.base_key
    assert old.target_key != new.target_key
    # Other use cases are untouched.
    assert before.identities["story-generation"] == after.identities["story-generation"]


def test_how_a_use_case_is_run_is_not_what_it_asks_of_its_models(shipped_repo: Path) -> None:
    spec = shipped_repo / "desired_state/npc-dialogue.yaml"
    original = spec.read_text()
    before = load_desired_state(shipped_repo).state
    spec.write_text(
        original.replace("selfHeal: true", "selfHeal: false").replace(
            "owners: [game-ai]", "owners: [game-ai, live-ops]"
        )
    )
    operational = load_desired_state(shipped_repo).state
    spec.write_text(original.replace("bakeTime: 30m", "bakeTime: 45m"))
    rollout = load_desired_state(shipped_repo).state
    assert before is not None and operational is not None and rollout is not None
    # Evaluations and rejections are recorded against the digest: neither is thrown away
    # when only the sync policy or the owners change, both are when the rollout does.
    assert operational.identities["npc-dialogue"] == before.identities["npc-dialogue"]
    assert rollout.identities["npc-dialogue"].digest != before.identities["npc-dialogue"].digest
    # The content digest of the whole desired state still sees every byte.
    assert operational.source.digest != before.source.digest


def test_job_resources_are_how_a_use_case_is_trained_not_what_it_asks(
    shipped_repo: Path,
) -> None:
    spec = shipped_repo / "desired_state/npc-dialogue.yaml"
    before = load_desired_state(shipped_repo).state
    spec.write_text(
        spec.read_text().replace(
            "    retrain: {maxAttempts: 2}\n",
            "    retrain: {maxAttempts: 2}\n    resources: {cpus: 4, gpus: 1, memoryGiB: 16}\n",
        )
    )
    bigger = load_desired_state(shipped_repo).state
    assert before is not None and bigger is not None
    resources = bigger.use_case("npc-dialogue").spec.training.resources
    assert resources is not None and (resources.cpus, resources.gpus) == (4, 1)
    assert resources.memory_gib == 16
    # Moving training to a GPU node neither retrains nor throws away an evaluation.
    assert bigger.identities["npc-dialogue"] == before.identities["npc-dialogue"]
    assert bigger.source.digest != before.source.digest


def test_unknown_ref_and_missing_folder_are_source_errors(
    git_repo: git.Repo, tmp_path: Path
) -> None:
    root = Path(git_repo.working_tree_dir or "")
    with pytest.raises(SourceError, match="unknown git ref 'nope'"):
        load_desired_state(root, "nope")
    with pytest.raises(SourceError, match="does not exist"):
        load_desired_state(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no desired_state/ folder"):
        load_desired_state(tmp_path / "empty")
    with pytest.raises(SourceError, match="needs a git repository"):
        load_desired_state(tmp_path / "empty", "main")


def test_ref_refuses_symlinks_in_the_commit(git_repo: git.Repo) -> None:
    root = Path(git_repo.working_tree_dir or "")
    # A symlinked dataset inside the repository and a symlinked YAML file, both committed.
    (root / "desired_state/datasets/linked.jsonl").symlink_to("story_generation/eval.jsonl")
    (root / "desired_state/linked.yaml").symlink_to("npc-dialogue.yaml")
    story = root / "desired_state/story-generation.yaml"
    text = story.read_text()
    assert "desired_state/datasets/story_generation/eval.jsonl" in text
    story.write_text(
        text.replace(
            "desired_state/datasets/story_generation/eval.jsonl",
            "desired_state/datasets/linked.jsonl",
        )
    )
    _commit_all(git_repo, "symlinks")
    result = load_desired_state(root, "HEAD")
    assert result.state is None
    found = {(d.file, d.field): d.message for d in result.diagnostics}
    assert found == {
        ("desired_state/linked.yaml", ""): "file is a symbolic link; commit the file itself",
        ("desired_state/story-generation.yaml", "spec.evaluation.prompts"): (
            "'desired_state/datasets/linked.jsonl' is a symbolic link; commit the file itself"
        ),
    }


def test_folder_refuses_a_yaml_symlink_out_of_the_repository(
    shipped_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text((shipped_repo / "policies/player-safety.yaml").read_text())
    (shipped_repo / "policies/player-safety.yaml").unlink()
    (shipped_repo / "policies/player-safety.yaml").symlink_to(outside)
    result = load_desired_state(shipped_repo)
    assert result.state is None
    problem = next(d for d in result.diagnostics if d.file == "policies/player-safety.yaml")
    assert problem.render() == (
        "policies/player-safety.yaml: file points outside the repository (through a symbolic link)"
    )


def test_malformed_dataset_lines_are_reported_with_file_and_line(shipped_repo: Path) -> None:
    initial = shipped_repo / "desired_state/datasets/npc_dialogue/initial.jsonl"
    lines = initial.read_text().splitlines()
    lines[2] = '{"prompt": "Where is the inn?"}'  # no response
    lines[4] = "{not json"
    initial.write_text("\n".join(lines) + "\n")
    prompts = shipped_repo / "desired_state/datasets/story_generation/eval.jsonl"
    prompts.write_bytes(b'{"prompt": "A tale"}\n{"prompt": "caf\xe9"}\n')
    result = load_desired_state(shipped_repo)
    assert result.state is None
    rendered = [d.render() for d in result.diagnostics]
    assert rendered == [
        "desired_state/datasets/npc_dialogue/initial.jsonl:3:1: a training line needs string "
        "'prompt' and 'response'; 'response' missing or not a string",
        "desired_state/datasets/npc_dialogue/initial.jsonl:5:1: not a JSON object: Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)",
        "desired_state/datasets/story_generation/eval.jsonl:2:1: not UTF-8 text",
    ]


def test_training_reads_the_datasets_of_the_ref_not_the_working_tree(
    git_repo: git.Repo,
) -> None:
    root = Path(git_repo.working_tree_dir or "")
    initial = "desired_state/datasets/npc_dialogue/initial.jsonl"
    committed = (root / initial).read_bytes()
    (root / initial).write_text('{"prompt": "uncommitted", "response": "edit"}\n')
    at_head = load_desired_state(root, "HEAD").state
    on_disk = load_desired_state(root).state
    assert at_head is not None and on_disk is not None
    assert at_head.dataset_text(initial).encode() == committed
    assert "uncommitted" in on_disk.dataset_text(initial)
