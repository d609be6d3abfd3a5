"""JSON Schema of desired-state documents, generated from the model.

`reconciler schema` prints it; a committed copy (`reconciler/spec/schema.json`) lets editors
validate and complete the YAML through the `yaml-language-server` header, and a test keeps the
copy in sync with the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from reconciler.spec.model import API_VERSION, Document

SCHEMA_ID = "https://model-reconciler.dev/schema/reconciler-v1.json"
COMMITTED_SCHEMA = Path(__file__).with_name("schema.json")


def document_schema() -> dict[str, Any]:
    schema = TypeAdapter(Document).json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"Model reconciler desired state ({API_VERSION})",
        **schema,
    }


def render_schema() -> str:
    return json.dumps(document_schema(), indent=2, sort_keys=True) + "\n"


def property_names() -> set[str]:
    """Every field name the schema knows, for 'did you mean' hints."""
    return set(_properties(document_schema()))


def _properties(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            yield from props
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item)
