"""Validation: one fixture per error kind, each naming the diagnostic it must produce.

Every file in `fixtures/invalid/` starts with one or more lines
``# expect: LINE:COL FIELD: MESSAGE`` and is dropped into a copy of the shipped desired state;
validation must report exactly that file, position, field and message (MESSAGE may be a prefix).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.loader import load_desired_state

FIXTURES = Path(__file__).parent / "fixtures" / "invalid"
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) ([^:]*): (.+)$")


def _expectations(fixture: Path) -> list[tuple[int, int, str, str]]:
    found = []
    for line in fixture.read_text().splitlines():
        match = _EXPECT.match(line)
        if match:
            found.append((int(match[1]), int(match[2]), match[3].strip(), match[4].strip()))
    return found


def _validate_with(repo: Path, fixture: Path) -> list[Diagnostic]:
    # Under zz-fixture/ so the fixture sorts after the shipped files: a duplicate is reported
    # on its second occurrence.
    target = repo / "desired_state" / "zz-fixture"
    target.mkdir(exist_ok=True)
    shutil.copy(fixture, target / fixture.name)
    result = load_desired_state(repo)
    assert result.state is None, f"{fixture.name} should not validate"
    return list(result.diagnostics)


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_error_kind_is_reported_at_its_place(shipped_repo: Path, fixture: Path) -> None:
    expected = _expectations(fixture)
    assert expected, f"{fixture.name} has no '# expect:' line"
    diagnostics = _validate_with(shipped_repo, fixture)
    relative = f"desired_state/zz-fixture/{fixture.name}"
    actual = [
        (
            d.position.line if d.position else 0,
            d.position.column if d.position else 0,
            d.field,
            d.message,
        )
        for d in diagnostics
        if d.file == relative
    ]
    for line, column, field, message in expected:
        assert any(
            (line, column, field) == (a_line, a_col, a_field) and a_message.startswith(message)
            for a_line, a_col, a_field, a_message in actual
        ), f"expected {line}:{column} {field}: {message}\n got {actual}"


def test_all_errors_are_reported_in_one_run(shipped_repo: Path) -> None:
    for name in ("unknown-field.yaml", "missing-dataset.yaml", "steps-not-increasing.yaml"):
        shutil.copy(FIXTURES / name, shipped_repo / "desired_state" / name)
    result = load_desired_state(shipped_repo)
    files = {d.file for d in result.diagnostics}
    assert files == {
        "desired_state/unknown-field.yaml",
        "desired_state/missing-dataset.yaml",
        "desired_state/steps-not-increasing.yaml",
    }


def test_python_tag_is_never_executed(shipped_repo: Path, tmp_path: Path) -> None:
    marker = Path("/tmp/reconciler-pwned")
    marker.unlink(missing_ok=True)
    _validate_with(shipped_repo, FIXTURES / "python-tag.yaml")
    assert not marker.exists()


def test_secret_value_is_not_echoed(shipped_repo: Path) -> None:
    diagnostics = _validate_with(shipped_repo, FIXTURES / "secret-in-api-key-env.yaml")
    rendered = "\n".join(d.render() for d in diagnostics)
    assert "apiKeyEnv" in rendered
    assert "THIS-IS-A-LEAKED-KEY" not in rendered


def test_non_utf8_file_is_refused_with_its_position(shipped_repo: Path) -> None:
    (shipped_repo / "desired_state" / "latin1.yaml").write_bytes(
        b"apiVersion: reconciler/v1\nkind: UseCase\nmetadata: {name: caf\xe9}\n"
    )
    diagnostics = load_desired_state(shipped_repo).diagnostics
    (problem,) = [d for d in diagnostics if d.file == "desired_state/latin1.yaml"]
    assert problem.message == "file is not valid UTF-8 text"
    assert problem.position is not None
    assert (problem.position.line, problem.position.column) == (3, 21)


def test_oversized_file_is_refused_before_parsing(shipped_repo: Path) -> None:
    big = "# padding\n" * 120_000
    (shipped_repo / "desired_state" / "huge.yaml").write_text(big)
    diagnostics = load_desired_state(shipped_repo).diagnostics
    (problem,) = [d for d in diagnostics if d.file == "desired_state/huge.yaml"]
    assert "limited to" in problem.message


def test_dataset_symlink_out_of_the_repository_is_refused(
    shipped_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"prompt": "hi"}\n')
    link = shipped_repo / "desired_state" / "datasets" / "linked.jsonl"
    link.symlink_to(outside)
    text = (FIXTURES / "missing-dataset.yaml").read_text()
    (shipped_repo / "desired_state" / "linked.yaml").write_text(
        text.replace("desired_state/datasets/nope.jsonl", "desired_state/datasets/linked.jsonl")
    )
    diagnostics = load_desired_state(shipped_repo).diagnostics
    assert any(
        d.file == "desired_state/linked.yaml" and "points outside the repository" in d.message
        for d in diagnostics
    )


def test_diagnostic_renders_file_line_column_field_message() -> None:
    from reconciler.spec.diagnostics import Position

    diagnostic = Diagnostic("desired_state/a.yaml", Position(3, 5), "spec.x", "is wrong")
    assert diagnostic.render() == "desired_state/a.yaml:3:5: spec.x: is wrong"


_MANY_PROBLEMS = """\
apiVersion: reconciler/v1
kind: UseCase
metadata:
  name: many-problems
spec:
  registeredModel: many-problems
  acceptableModels:
    - {source: local, path: models/tiny-base, license: mit}
  training:
    method: full
    data:
      initial: desired_state/../../secrets.jsonl
  evaluation:
    prompts: /etc/passwd
  rollout:
    steps: [50, 25, 75]
  guardrails: [player-safety, no-such-policy]
"""


def test_one_document_reports_every_independent_problem(shipped_repo: Path) -> None:
    # The steps fail the model; the paths and the policy are cross-document checks that
    # must still run on that same document.
    (shipped_repo / "desired_state" / "many.yaml").write_text(_MANY_PROBLEMS)
    diagnostics = load_desired_state(shipped_repo).diagnostics
    found = sorted(
        (d.position.line, d.position.column, d.field, d.message)
        for d in diagnostics
        if d.position is not None
    )
    assert [d.file for d in diagnostics] == ["desired_state/many.yaml"] * 5
    expected = [
        (12, 16, "spec.training.data.initial", "'desired_state/../../secrets.jsonl' points"),
        (14, 14, "spec.evaluation.prompts", "'/etc/passwd' is absolute"),
        (16, 12, "spec.rollout.steps", "steps must be strictly increasing; got [50, 25, 75]"),
        (16, 12, "spec.rollout.steps", "the last step must be 100 (full traffic); got 75"),
        (17, 31, "spec.guardrails[1]", "unknown guardrail policy 'no-such-policy'"),
    ]
    assert len(found) == len(expected)
    for (line, column, field, message), want in zip(sorted(found), sorted(expected), strict=True):
        assert (line, column, field) == want[:3]
        assert message.startswith(want[3]), message


def test_duplicate_names_are_found_in_a_document_that_fails_the_model(
    shipped_repo: Path,
) -> None:
    (shipped_repo / "desired_state" / "zz-copy.yaml").write_text(
        "apiVersion: reconciler/v1\n"
        "kind: UseCase\n"
        "metadata: {name: npc-dialogue}\n"
        "spec:\n"
        "  registered_model: story-generation\n"
        "  acceptableModels: []\n"
        "  evaluation: {prompts: desired_state/datasets/nope.jsonl}\n"
    )
    diagnostics = load_desired_state(shipped_repo).diagnostics
    messages = {
        (d.position.line if d.position else 0, d.field): d.message
        for d in diagnostics
        if d.file == "desired_state/zz-copy.yaml"
    }
    assert messages[(3, "metadata.name")].startswith("duplicate use case 'npc-dialogue'")
    # The snake_case spelling validates too, so it is checked under the name it was written.
    assert messages[(5, "spec.registered_model")].startswith(
        "duplicate registered model 'story-generation'"
    )
    assert messages[(6, "spec.acceptableModels")].startswith("List should have at least 1")
    assert messages[(7, "spec.evaluation.prompts")].endswith("does not exist in the repository")


def test_a_policy_with_a_schema_error_still_defines_its_name(shipped_repo: Path) -> None:
    policy = shipped_repo / "policies" / "player-safety.yaml"
    policy.write_text(policy.read_text().replace("\nspec:\n", "\nspec:\n  colour: red\n", 1))
    diagnostics = load_desired_state(shipped_repo).diagnostics
    # The use cases that name player-safety are not told it is unknown: it exists, and is
    # broken in one place, which is reported once, there.
    assert [(d.file, d.field) for d in diagnostics] == [
        ("policies/player-safety.yaml", "spec.colour")
    ]


def test_a_kind_that_is_not_a_string_is_reported_not_a_crash(shipped_repo: Path) -> None:
    (shipped_repo / "desired_state" / "odd.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: [UseCase]\nmetadata: {name: npc-dialogue}\n"
    )
    diagnostics = load_desired_state(shipped_repo).diagnostics
    assert [d.render() for d in diagnostics] == [
        "desired_state/odd.yaml:2:7: kind: ['UseCase'] is unknown; expected one of UseCase, "
        "GuardrailPolicy, Notifications"
    ]
