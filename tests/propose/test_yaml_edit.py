"""The YAML editor changes only the edited node: every other byte stays, in every style of
file (comments, indentless lists, flow lists and mappings, several documents), and a value
that could change the document's structure is quoted."""

from __future__ import annotations

import difflib

import pytest
import yaml

from reconciler.propose.yaml_edit import (
    YamlEditError,
    append_to_sequence,
    prepend_to_sequence,
    render_scalar,
    verify_edit,
)

ENTRY = {"source": "huggingface", "id": "acme/npc-small", "revision": "a" * 40, "license": "mit"}

BLOCK = """\
# yaml-language-server: $schema=../reconciler/spec/schema.json
apiVersion: reconciler/v1   # trailing comment
kind: UseCase
metadata: {name: npc,  owners: [a,  b]}
spec:
  registeredModel: npc
  acceptableModels:
    # In order of preference.
    -   source: local     # odd spacing kept
        path: models/tiny-base
        license: apache-2.0
  constraints:
    licenses: [apache-2.0, mit]
  evaluation: {prompts: e.jsonl}
"""
INDENTLESS = """\
apiVersion: reconciler/v1
kind: UseCase
metadata:
  name: npc
spec:
  registeredModel: npc
  acceptableModels:
  - source: local
    path: models/tiny-base
    license: apache-2.0
  evaluation:
    prompts: e.jsonl
"""
FLOW = """\
apiVersion: reconciler/v1
kind: UseCase
metadata: {name: npc}
spec:
  registeredModel: npc
  acceptableModels: [{source: local, path: models/tiny-base, license: mit}]
  evaluation: {prompts: e.jsonl}
"""
FLOW_ITEMS = """\
apiVersion: reconciler/v1
kind: UseCase
metadata: {name: npc}
spec:
  acceptableModels:
    - {source: local, path: models/tiny-base, license: mit}
  rejected:
    - {key: "sha256:1", reason: first, at: "2026-11-30T00:00:00Z"}
  evaluation: {prompts: e.jsonl}
"""
TWO_DOCUMENTS = FLOW + "---\n" + INDENTLESS.replace("name: npc", "name: other")


def changes(before: str, after: str) -> list[tuple[str, list[str]]]:
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    return [(tag, [after[j1:j2]]) for tag, _, _, j1, j2 in matcher.get_opcodes() if tag != "equal"]


@pytest.mark.parametrize(
    "text", [BLOCK, INDENTLESS, FLOW, FLOW_ITEMS], ids=["block", "indentless", "flow", "flow-items"]
)
def test_prepending_inserts_and_changes_nothing_else(text: str) -> None:
    after = prepend_to_sequence(text, 0, "acceptableModels", ENTRY)
    edits = changes(text, after)
    assert [tag for tag, _ in edits] == ["insert"], edits
    data = yaml.safe_load(after)
    original = yaml.safe_load(text)
    assert data["spec"]["acceptableModels"] == [ENTRY, *original["spec"]["acceptableModels"]]
    verify_edit(
        text,
        after,
        file="f.yaml",
        document_index=0,
        key="acceptableModels",
        expected=data["spec"]["acceptableModels"],
    )


def test_the_new_item_takes_its_siblings_indentation() -> None:
    after = prepend_to_sequence(
        BLOCK, 0, "acceptableModels", {"source": "local", "path": "x", "license": "mit"}
    )
    assert "    # In order of preference.\n    -   source: local\n        path: x\n" in after
    after = prepend_to_sequence(
        INDENTLESS, 0, "acceptableModels", {"source": "local", "path": "x", "license": "mit"}
    )
    assert "  acceptableModels:\n  - source: local\n    path: x\n" in after


def test_only_the_named_document_changes() -> None:
    after = prepend_to_sequence(TWO_DOCUMENTS, 1, "acceptableModels", ENTRY)
    first, second = list(yaml.safe_load_all(after))
    assert first == yaml.safe_load(FLOW)
    assert second["spec"]["acceptableModels"][0] == ENTRY
    assert after.startswith(FLOW)


def test_appending_rejected_creates_the_key_or_extends_the_list() -> None:
    entry = {
        "key": "sha256:2",
        "version": "3",
        "reason": "canary failed: errorRate 0.2 > 0.01",
        "at": "2026-12-01T10:00:00Z",
    }
    created = append_to_sequence(INDENTLESS, 0, "rejected", entry)
    assert [tag for tag, _ in changes(INDENTLESS, created)] == ["insert"]
    assert yaml.safe_load(created)["spec"]["rejected"] == [entry]
    assert created.endswith(
        '    prompts: e.jsonl\n  rejected:\n    - key: "sha256:2"\n      version: "3"\n'
        '      reason: "canary failed: errorRate 0.2 > 0.01"\n      at: "2026-12-01T10:00:00Z"\n'
    )
    extended = append_to_sequence(FLOW_ITEMS, 0, "rejected", entry)
    assert [tag for tag, _ in changes(FLOW_ITEMS, extended)] == ["insert"]
    assert [r["key"] for r in yaml.safe_load(extended)["spec"]["rejected"]] == [
        "sha256:1",
        "sha256:2",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "plain-id",
        "acme/npc",
        "yes",
        "null",
        "1e3",
        "0x10",
        "a: b",
        "- x",
        "#c",
        "x\ny",
        "{a}",
        "é",
        "'q'",
        "",
    ],
)
def test_every_scalar_reads_back_as_itself(value: str) -> None:
    rendered = render_scalar(value)
    assert yaml.safe_load(f"k: {rendered}")["k"] == value


def test_plain_only_when_unambiguous() -> None:
    assert render_scalar("acme/npc-small") == "acme/npc-small"
    assert render_scalar("yes") == '"yes"'
    assert render_scalar("2e9") == '"2e9"'
    assert render_scalar(2e6) == "2000000"
    assert render_scalar(1.5e-3) == "0.0015"


def test_an_edit_that_would_not_read_back_is_refused() -> None:
    with pytest.raises(YamlEditError, match="did not read back as intended"):
        verify_edit(
            FLOW,
            FLOW.replace("license: mit", "license: apache-2.0"),
            file="f.yaml",
            document_index=0,
            key="acceptableModels",
            expected=yaml.safe_load(FLOW)["spec"]["acceptableModels"],
        )
    with pytest.raises(YamlEditError, match="not a non-empty list"):
        prepend_to_sequence(FLOW, 0, "guardrails", ENTRY)
