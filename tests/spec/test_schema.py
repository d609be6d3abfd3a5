"""The JSON Schema: generated from the model, committed for editors, and in sync."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest

from reconciler.spec.schema import COMMITTED_SCHEMA, document_schema, render_schema
from reconciler.spec.yaml_source import read_yaml_documents

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*ROOT.glob("desired_state/*.yaml"), *ROOT.glob("policies/*.yaml")])


def test_committed_schema_matches_the_model() -> None:
    assert COMMITTED_SCHEMA.read_text() == render_schema(), (
        "reconciler/spec/schema.json is stale: run `make schema`"
    )


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(document_schema())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_documents_validate_against_the_schema_and_name_it(path: Path) -> None:
    text = path.read_text()
    header = re.search(r"yaml-language-server: \$schema=(\S+)", text)
    assert header, f"{path.name} has no yaml-language-server header"
    assert (path.parent / header[1]).resolve() == COMMITTED_SCHEMA.resolve()
    validator = jsonschema.Draft202012Validator(document_schema())
    documents, problems = read_yaml_documents(path.name, path.read_bytes())
    assert problems == []
    for document in documents:
        errors = list(validator.iter_errors(document.data))
        assert errors == [], [e.message for e in errors]


def test_schema_rejects_unknown_fields() -> None:
    validator = jsonschema.Draft202012Validator(document_schema())
    path = ROOT / "desired_state/npc-dialogue.yaml"
    (parsed,), _ = read_yaml_documents(path.name, path.read_bytes())
    document = parsed.data
    document["spec"]["generation"]["maxNewToken"] = 3
    assert not validator.is_valid(document)
