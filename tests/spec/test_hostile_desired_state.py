"""`reconciler validate` against desired states written to hurt: bounded work, clear errors
with file and line, secrets refused without being echoed, repeated problems summarised."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from reconciler.cli import main
from reconciler.spec.diagnostics import MAX_SHOWN
from reconciler.spec.loader import MAX_DATASET_BYTES, load_desired_state
from reconciler.spec.yaml_source import (
    MAX_EVENTS_PER_LOAD,
    MAX_NODES_PER_DOCUMENT,
    MAX_VALUES_PER_FILE,
    MAX_VALUES_PER_LOAD,
)

NPC = "desired_state/npc-dialogue.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _bomb_document() -> str:
    """A document of ~140 bytes that expands to 11,111 values: under the per-document limit,
    so only a budget over the file and the load stops many of them."""
    return (
        "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    )


def test_the_bomb_document_is_under_the_per_document_limit() -> None:
    from reconciler.spec.yaml_source import read_yaml_documents

    (document,), problems = read_yaml_documents("f.yaml", _bomb_document().encode())
    assert problems == []
    assert 10_000 < len(json.dumps(document.data)) // 4 < MAX_NODES_PER_DOCUMENT


def test_twelve_hundred_expanding_documents_are_refused_by_the_file_budget(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    attack = "---\n".join(_bomb_document() for _ in range(1_200))
    (shipped_repo / "desired_state" / "bomb.yaml").write_text(attack)
    code, _, err = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 1
    [line] = [line for line in err.splitlines() if "values (alias expansion bomb?)" in line]
    assert f"expand to more than {MAX_VALUES_PER_FILE} values" in line
    # Where reading stopped: in the 5th document (5 lines each with its '---'), the first
    # that takes the file over its budget; the 1,195 after it are never read.
    assert line.startswith(f"desired_state/bomb.yaml:{4 * 5 + 1}:")


def test_bombs_spread_over_files_are_refused_by_the_load_budget_also_from_a_ref(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    per_file = "---\n".join(_bomb_document() for _ in range(4))  # 44,444 values each
    for number in range(12):
        (shipped_repo / "desired_state" / f"bomb-{number:02}.yaml").write_text(per_file)
    repo = git.Repo.init(shipped_repo)
    repo.git.add(A=True)
    repo.index.commit("a crafted desired state")
    try:
        for ref in ([], ["--ref", "HEAD"]):
            code, _, err = run(capsys, "validate", "--repo", str(shipped_repo), *ref)
            assert code == 1
            assert f"expands to more than {MAX_VALUES_PER_LOAD} values in all" in err
            assert "more file(s) not read" in err
    finally:
        repo.close()


def test_dense_files_are_refused_by_the_load_wide_event_budget(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    line = "- [a,b,c,d,e,f,g,h]\n"  # 11 events a line: each file is refused at its own limit
    for number in range(12):
        (shipped_repo / "desired_state" / f"dense-{number:02}.yaml").write_text(line * 1_000)
    code, _, err = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 1
    assert f"holds more than {MAX_EVENTS_PER_LOAD} YAML nodes in all" in err
    assert "more file(s) not read" in err


def test_a_fleet_of_two_thousand_use_cases_is_within_the_budget(tmp_path: Path) -> None:
    """The budget bounds a crafted repository, not a large honest one: 2,000 use cases of the
    size bench/plan_scale.py plans, twenty to a file, validate."""
    folder = tmp_path / "desired_state"
    folder.mkdir()
    (folder / "eval.jsonl").write_text('{"prompt": "hello"}\n')
    use_case = (
        "---\napiVersion: reconciler/v1\nkind: UseCase\nmetadata: {{name: fleet-{i:04d}}}\n"
        "spec:\n  registeredModel: fleet-{i:04d}\n  acceptableModels:\n"
        "    - {{source: local, path: models/tiny-base, revision: r{i}, license: mit}}\n"
        "  evaluation: {{prompts: desired_state/eval.jsonl}}\n"
    )
    for first in range(0, 2_000, 20):
        text = "".join(use_case.format(i=i) for i in range(first, first + 20))
        (folder / f"fleet-{first:04d}.yaml").write_text(text)
    loaded = load_desired_state(tmp_path)
    assert loaded.state is not None, loaded.diagnostics[:5]
    assert len(loaded.state.use_cases) == 2_000


def test_a_deeply_nested_dataset_line_is_a_file_line_error(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    dataset = shipped_repo / "desired_state/datasets/npc_dialogue/eval.jsonl"
    lines = dataset.read_text().splitlines()
    dataset.write_text("\n".join([*lines[:2], "[" * 100_000, *lines[2:]]) + "\n")
    code, _, err = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 1
    assert "desired_state/datasets/npc_dialogue/eval.jsonl:3:1: nested too deeply" in err
    assert "Traceback" not in err and "RecursionError" not in err


def test_an_oversized_dataset_is_refused_unread(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    dataset = shipped_repo / "desired_state/datasets/npc_dialogue/initial.jsonl"
    with dataset.open("r+b") as handle:
        handle.truncate(MAX_DATASET_BYTES + 1)  # sparse: the size is known without writing it
    code, _, err = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 1
    assert (
        f"desired_state/datasets/npc_dialogue/initial.jsonl: dataset is {MAX_DATASET_BYTES + 1} "
        f"bytes; datasets are limited to {MAX_DATASET_BYTES} bytes" in err
    )


PROVIDER = """\
apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: story-provider}}
spec:
  registeredModel: story-provider
  acceptableModels:
    - source: openai-compatible
      id: gpt-story
      license: proprietary
      {settings}
  evaluation: {{prompts: desired_state/datasets/npc_dialogue/eval.jsonl}}
"""


@pytest.mark.parametrize(
    ("settings", "secret", "expected"),
    [
        (
            "baseUrl: https://player:hunter2-pass@api.example/v1",
            "hunter2-pass",
            "baseUrl carries credentials before the host",
        ),
        (
            "baseUrl: https://api.example/v1?api_key=hunter2-query",
            "hunter2-query",
            "baseUrl carries the query parameter 'api_key'",
        ),
        (
            "{baseUrl: 'https://api.example/v1', apiKeyEnv: SK_LIVE_51H8XQ2V9ABCDEF1234}",
            "51H8XQ2V9ABCDEF1234",
            "looks like a secret value",
        ),
    ],
)
def test_secrets_written_into_a_provider_are_refused_and_never_echoed(
    capsys: pytest.CaptureFixture[str],
    shipped_repo: Path,
    settings: str,
    secret: str,
    expected: str,
) -> None:
    if settings.startswith("{"):
        settings = settings.strip("{}").replace(", ", "\n      ")
    path = shipped_repo / "desired_state" / "story-provider.yaml"
    path.write_text(PROVIDER.format(settings=settings))
    outputs = []
    for output in ("text", "json", "github"):
        code, out, err = run(capsys, "validate", "--repo", str(shipped_repo), "--output", output)
        assert code == 1
        outputs.append(out + err)
    assert expected in outputs[0]
    assert all(secret not in text for text in outputs)


def test_thousands_of_bad_rollout_steps_are_summarised(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    path = shipped_repo / NPC
    steps = ", ".join(f"{i + 0.5}" for i in range(5_000))
    path.write_text(path.read_text().replace("steps: [10, 25, 50, 75, 100]", f"steps: [{steps}]"))
    code, _, err = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 1
    lines = err.splitlines()
    assert len(lines) < 20, lines[:30]
    step_lines = [line for line in lines if "spec.rollout.steps" in line]
    assert len(step_lines) == 6  # five shown, one summary
    summary = "spec.rollout.steps[*]: must be a whole number (4995 more like this, not shown)"
    assert summary in step_lines[-1]
    assert lines[-1] == "5000 error(s) in 1 file(s); nothing was changed."
    code, out, _ = run(capsys, "validate", "--repo", str(shipped_repo), "--output", "json")
    document = json.loads(out)
    assert sum(d["repeats"] for d in document["diagnostics"]) >= 5_000
    assert len(document["diagnostics"]) < 20


def test_a_flood_of_different_problems_is_cut_off_with_a_count(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    path = shipped_repo / NPC
    unknown = "".join(f"  unknownField{i}: 1\n" for i in range(400))
    path.write_text(path.read_text().replace("spec:\n", f"spec:\n{unknown}", 1))
    code, _, err = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == MAX_SHOWN + 1  # the shown lines and the closing count
    assert "201 more problem line(s) not shown; fix the ones above first" in lines[-2]
    assert lines[-1] == "400 error(s) in 1 file(s); nothing was changed."
