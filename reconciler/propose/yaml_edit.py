"""Edits to desired-state YAML that leave every byte outside the edited node as it was.

A round-trip YAML library was the first choice: `ruamel.yaml` keeps comments and key order, but
dumping re-renders the whole file - sequences are re-indented to one style, long scalars are
re-wrapped at its line width and flow mappings lose their spacing (on the shipped files every
one changed). A reviewer must see only the proposed change, so edits here are text splices:
the YAML composer (the same safe PyYAML parser the loader uses) finds the node and its marks,
the new text is written in the style of its siblings (their indentation, flow or block), and
the result is parsed again and must equal the intended data, or the edit is refused.

Values written here come from outside (a Hub id, a provider's model name): every scalar is
emitted plain only when it is unambiguous text, and double-quoted (JSON escaping, which YAML
reads the same way) otherwise, so no value can change the document's structure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import ReconcilerError
from reconciler.spec.yaml_source import read_yaml_documents

_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@+-]*$")
_YAML12_NUMBER = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


class YamlEditError(ReconcilerError):
    """The edit cannot be made without touching more than its node."""


Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class _Located:
    node: Node
    text: str


def render_scalar(value: Scalar) -> str:
    """`value` as a YAML scalar that reads back as exactly `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if (
        _PLAIN_SAFE.match(value)
        and not _YAML12_NUMBER.match(value)
        and yaml.safe_load(value) == value
    ):
        return value
    return json.dumps(value, ensure_ascii=False)


def _render_flow_mapping(entry: Mapping[str, Scalar]) -> str:
    return "{" + ", ".join(f"{k}: {render_scalar(v)}" for k, v in entry.items()) + "}"


def _render_block_item(entry: Mapping[str, Scalar], dash_column: int, gap: int) -> str:
    """`- key: value` lines for a block sequence whose dashes stand at `dash_column`."""
    lines = []
    for i, (key, value) in enumerate(entry.items()):
        prefix = " " * dash_column + "-" + " " * (gap - 1) if i == 0 else " " * (dash_column + gap)
        lines.append(f"{prefix}{key}: {render_scalar(value)}\n")
    return "".join(lines)


def _compose(text: str, document_index: int) -> Node:
    documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    if document_index >= len(documents) or documents[document_index] is None:
        raise YamlEditError(f"document {document_index} is not in the file")
    node = documents[document_index]
    assert node is not None
    return node


def _child(node: Node, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return value_node  # type: ignore[no-any-return]
    return None


def _last_key(node: MappingNode) -> ScalarNode:
    key: ScalarNode = node.value[-1][0]
    return key


def _content_end(node: Node) -> int:
    """Offset just after the last character that belongs to `node` (not trailing comments)."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    return int(node.end_mark.index)


def _line_after(text: str, offset: int) -> int:
    """Offset of the start of the line after the one holding `offset - 1`."""
    if offset > 0 and text[offset - 1] == "\n":
        return offset  # a block scalar ends with its newline
    newline = text.find("\n", offset)
    return len(text) if newline < 0 else newline + 1


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _spec(text: str, document_index: int) -> MappingNode:
    root = _compose(text, document_index)
    spec = _child(root, "spec")
    if not isinstance(spec, MappingNode) or not spec.value:
        raise YamlEditError("the document has no spec mapping")
    return spec


def prepend_to_sequence(
    text: str, document_index: int, key: str, entry: Mapping[str, Scalar]
) -> str:
    """Make `entry` the first item of `spec.<key>` (an existing, non-empty sequence)."""
    spec = _spec(text, document_index)
    sequence = _child(spec, key)
    if not isinstance(sequence, SequenceNode) or not sequence.value:
        raise YamlEditError(f"spec.{key} is not a non-empty list")
    start = int(sequence.start_mark.index)
    if sequence.flow_style:
        opening = text.index("[", start) + 1
        return text[:opening] + _render_flow_mapping(entry) + ", " + text[opening:]
    dash = int(sequence.value[0].start_mark.index)
    # The dash of the first item: the item's node starts after "- ".
    dash = text.rindex("-", 0, dash + 1) if text[dash] != "-" else dash
    line = _line_start(text, dash)
    if text[line:dash].strip():
        raise YamlEditError(f"spec.{key} starts mid-line; edit it by hand")
    column = dash - line
    first = sequence.value[0]
    gap = int(first.start_mark.column) - column if isinstance(first, MappingNode) else 2
    if isinstance(first, MappingNode) and first.flow_style:
        item = " " * column + "- " + _render_flow_mapping(entry) + "\n"
    else:
        item = _render_block_item(entry, column, max(gap, 2))
    return text[:line] + item + text[line:]


def append_to_sequence(
    text: str, document_index: int, key: str, entry: Mapping[str, Scalar]
) -> str:
    """Add `entry` at the end of `spec.<key>`, creating the key when it is missing."""
    spec = _spec(text, document_index)
    sequence = _child(spec, key)
    if sequence is None:
        key_column = int(_last_key(spec).start_mark.column)
        insert_at = _line_after(text, _content_end(spec))
        block = f"{' ' * key_column}{key}:\n" + _render_block_item(entry, key_column + 2, 2)
        prefix = text[:insert_at]
        return _with_newline(prefix) + block + text[insert_at:] if prefix else block
    if not isinstance(sequence, SequenceNode):
        raise YamlEditError(f"spec.{key} is not a list")
    if sequence.flow_style:
        closing = int(sequence.end_mark.index) - 1
        separator = ", " if sequence.value else ""
        return text[:closing] + separator + _render_flow_mapping(entry) + text[closing:]
    if not sequence.value:
        raise YamlEditError(f"spec.{key} is empty and not a flow list")
    last = sequence.value[-1]
    dash_column = int(sequence.start_mark.column)
    gap = int(last.start_mark.column) - dash_column if isinstance(last, MappingNode) else 2
    insert_at = _line_after(text, _content_end(last))
    if isinstance(last, MappingNode) and last.flow_style:
        item = " " * dash_column + "- " + _render_flow_mapping(entry) + "\n"
    else:
        item = _render_block_item(entry, dash_column, max(gap, 2))
    return _with_newline(text[:insert_at]) + item + text[insert_at:]


def verify_edit(
    before: str,
    after: str,
    *,
    file: str,
    document_index: int,
    key: str,
    expected: Sequence[Mapping[str, Any]],
) -> None:
    """Refuse an edit whose result does not read back as intended, in any document."""
    old_docs, old_problems = read_yaml_documents(file, before.encode("utf-8"))
    new_docs, new_problems = read_yaml_documents(file, after.encode("utf-8"))
    if old_problems or new_problems or len(old_docs) != len(new_docs):
        raise YamlEditError(f"editing {file} would not leave valid YAML; edit it by hand")
    for old, new in zip(old_docs, new_docs, strict=True):
        if old.index != document_index:
            if old.data != new.data:
                raise YamlEditError(f"editing {file} would change another document")
            continue
        wanted = dict(old.data)
        wanted["spec"] = {**old.data["spec"], key: [dict(e) for e in expected]}
        if new.data != wanted:
            raise YamlEditError(f"editing {file} did not read back as intended; edit it by hand")
