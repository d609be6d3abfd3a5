"""Safe YAML reading that remembers where every value came from.

PyYAML's `safe_load` forgets positions, silently keeps the last of duplicate keys, and expands
aliases without bound. We compose the node graph with the safe loader and build plain Python
values ourselves, so that:

- every value and every key has a (line, column), for ``FILE:LINE:COL`` diagnostics;
- duplicate keys are errors, not silent overrides;
- only the safe tags construct (a ``!!python/...`` tag is an error, never code);
- alias expansion is bounded (a "billion laughs" document is refused, not expanded);
- nesting is bounded (a file of a thousand ``[`` is refused, not a stack overflow);
- oversized and non-UTF-8 files are refused before parsing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.spec.diagnostics import Diagnostic, Position

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES_PER_DOCUMENT = 50_000
# Desired-state documents nest about eight levels deep. PyYAML's composer and our builder
# recurse once per level, so unbounded nesting would exhaust Python's stack (~1000 frames).
MAX_DEPTH = 64

FieldPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SAFE_SCALAR_TAGS = frozenset(
    {
        _STR_TAG,
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        _TIMESTAMP_TAG,
    }
)
# YAML 1.2 reads a plain `2e9` as a number; PyYAML (YAML 1.1) as a string. Editors follow 1.2,
# so we do too, and the reconciler and the yaml-language-server agree on what a file means.
_YAML12_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$")
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class YamlDocument:
    """One document of a YAML file: its plain value and where each part of it was written."""

    file: str
    index: int
    start: Position
    data: Any
    value_positions: dict[FieldPath, Position] = field(default_factory=dict)
    key_positions: dict[FieldPath, Position] = field(default_factory=dict)

    def position_of(self, path: FieldPath, *, prefer_key: bool = False) -> Position:
        """Where `path` was written; falls back to the nearest enclosing value that was."""
        probe = tuple(path)
        while True:
            if prefer_key and probe in self.key_positions:
                return self.key_positions[probe]
            if probe in self.value_positions:
                return self.value_positions[probe]
            if not probe:
                return self.start
            probe = probe[:-1]
            prefer_key = False


class _ExpansionLimitError(Exception):
    """The document would expand to more values than any desired state needs."""


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels; refused"


class _TooDeepError(Exception):
    """The composer met a collection nested deeper than MAX_DEPTH, at `position`."""

    def __init__(self, position: Position) -> None:
        super().__init__(_TOO_DEEP)
        self.position = position


class _DepthLimitedLoader(yaml.SafeLoader):
    """The safe loader, with the composer refusing to descend past MAX_DEPTH collections.

    The check sits in `compose_node`, which PyYAML calls once per node on its way down, so the
    refusal comes while the stack is still shallow, at the exact place of the offending bracket.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if not self.check_event(SequenceStartEvent, MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            # types-PyYAML leaves Parser.peek_event untyped; it returns the event just checked.
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _TooDeepError(Position(mark.line + 1, mark.column + 1))
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _DocumentError(Exception):
    def __init__(self, position: Position, field_path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.field_path = field_path
        self.message = message


def _position(node: Node) -> Position:
    mark = node.start_mark
    return Position(mark.line + 1, mark.column + 1)


def format_field_path(path: FieldPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class _Builder:
    """Turns one composed node graph into plain values, recording positions as it goes."""

    def __init__(self, file: str, index: int) -> None:
        self.file = file
        self.index = index
        self.nodes_seen = 0
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self._constructor = yaml.SafeLoader("")
        self._active: set[int] = set()
        # Aliases and merge keys can nest a value deeper than it was written, so the builder
        # keeps its own count of the collections it is inside.
        self._depth = 0

    def build(self, node: Node, path: FieldPath) -> Any:
        self.nodes_seen += 1
        if self.nodes_seen > MAX_NODES_PER_DOCUMENT:
            raise _ExpansionLimitError()
        self.values.setdefault(path, _position(node))
        if id(node) in self._active:
            raise _DocumentError(_position(node), path, "recursive alias: a value contains itself")
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        with self._inside(node, path):
            if isinstance(node, SequenceNode):
                self._expect_tag(node, _SEQ_TAG, path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                self._expect_tag(node, _MAP_TAG, path)
                return self._mapping(node, path)
        raise _DocumentError(_position(node), path, f"unsupported YAML node {type(node).__name__}")

    @contextlib.contextmanager
    def _inside(self, node: Node, path: FieldPath) -> Iterator[None]:
        """Enter a collection: refuse it when it contains itself or nests too deep."""
        if id(node) in self._active:
            raise _DocumentError(_position(node), path, "recursive alias: a value contains itself")
        if self._depth >= MAX_DEPTH:
            raise _DocumentError(_position(node), path, _TOO_DEEP)
        self._active.add(id(node))
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self._active.discard(id(node))

    def _expect_tag(self, node: Node, tag: str, path: FieldPath) -> None:
        if node.tag != tag:
            raise _DocumentError(
                _position(node), path, f"tag {_short_tag(node.tag)} is not allowed"
            )

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        if node.tag not in _SAFE_SCALAR_TAGS:
            raise _DocumentError(
                _position(node),
                path,
                f"tag {_short_tag(node.tag)} is not allowed (only plain YAML values are read)",
            )
        if node.tag == _STR_TAG and node.style is None and _YAML12_FLOAT.match(node.value):
            return float(node.value)
        if node.tag == _TIMESTAMP_TAG:
            # A date is data, not a datetime object: keep what the author wrote.
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise _DocumentError(_position(node), path, f"invalid value: {exc}") from exc

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[tuple[MappingNode, FieldPath]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise _DocumentError(
                            _position(source), path, "a merge key (<<) needs a mapping"
                        )
                    merged.append((source, path))
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                raise _DocumentError(
                    _position(key_node),
                    path,
                    f"mapping keys must be strings; {shown!r} is read as "
                    f"{_short_tag(key_node.tag)} (quote it)",
                )
            key = key_node.value
            child = (*path, key)
            if key in result:
                first = self.keys[child]
                raise _DocumentError(
                    _position(key_node),
                    child,
                    f"duplicate key {key!r} (first defined at line {first.line})",
                )
            self.keys[child] = _position(key_node)
            result[key] = self.build(value_node, child)
        # Explicit keys win over merged ones, as YAML's merge key specifies.
        for source, at in merged:
            # A merged mapping may itself merge others (or, through an anchor, itself).
            with self._inside(source, at):
                for key, value in self._mapping(source, at).items():
                    result.setdefault(key, value)
        return result


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def decode_utf8(file: str, raw: bytes) -> tuple[str | None, list[Diagnostic]]:
    """Decode `raw` as UTF-8, or say where the first invalid byte is."""
    if len(raw) > MAX_FILE_BYTES:
        return None, [
            Diagnostic(
                file,
                None,
                "",
                f"file is {len(raw)} bytes; desired-state files are limited to {MAX_FILE_BYTES}",
            )
        ]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        return None, [Diagnostic(file, Position(line, column), "", "file is not valid UTF-8 text")]


def read_yaml_documents(file: str, raw: bytes) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Parse every document in a YAML file; errors are returned, never raised."""
    text, problems = decode_utf8(file, raw)
    if text is None:
        return [], problems
    documents: list[YamlDocument] = []
    try:
        for index, node in enumerate(yaml.compose_all(text, Loader=_DepthLimitedLoader)):
            if node is None or (isinstance(node, ScalarNode) and node.tag.endswith(":null")):
                continue  # an empty document, e.g. after a trailing '---'
            builder = _Builder(file, index)
            try:
                data = builder.build(node, ())
            except _DocumentError as exc:
                field_name = format_field_path(exc.field_path)
                problems.append(Diagnostic(file, exc.position, field_name, exc.message))
                continue
            except _ExpansionLimitError:
                problems.append(
                    Diagnostic(
                        file,
                        _position(node),
                        "",
                        f"document expands to more than {MAX_NODES_PER_DOCUMENT} values "
                        "(alias expansion bomb?); refused",
                    )
                )
                continue
            documents.append(
                YamlDocument(file, index, _position(node), data, builder.values, builder.keys)
            )
    except _TooDeepError as exc:
        # The composer stopped mid-file; documents after this one are not read.
        problems.append(Diagnostic(file, exc.position, "", _TOO_DEEP))
    except RecursionError:
        # Not expected with the depth limits above; kept so no YAML input can end in a
        # traceback.
        problems.append(Diagnostic(file, None, "", "nested too deeply to read; refused"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or str(exc)
        context = f" {exc.context}" if exc.context else ""
        problems.append(Diagnostic(file, position, "", f"invalid YAML: {problem}{context}"))
    except yaml.YAMLError as exc:
        problems.append(Diagnostic(file, None, "", f"invalid YAML: {exc}"))
    return documents, problems
