"""Safe YAML reading that remembers where every value came from.

PyYAML's `safe_load` forgets positions, silently keeps the last of duplicate keys, and expands
aliases without bound. We compose the node graph with the safe loader and build plain Python
values ourselves, so that:

- every value and every key has a (line, column), for ``FILE:LINE:COL`` diagnostics;
- duplicate keys are errors, not silent overrides;
- only the safe tags construct (a ``!!python/...`` tag is an error, never code);
- alias expansion is bounded (a "billion laughs" document is refused, not expanded);
- nesting is bounded (a file of a thousand ``[`` is refused, not a stack overflow);
- oversized and non-UTF-8 files are refused before parsing;
- the work is bounded per file and per load (`ParseBudget`): bytes read, parser events
  composed and values built, so any desired state is read or refused in about a second,
  however it is crafted (1,200 documents each just under the expansion limit would take
  minutes otherwise). PyYAML's pure-Python parser costs ~10-30 µs an event and building
  ~5 µs a value on a slow machine; the per-file limits are 25 to 100 times what the shipped
  desired state uses (~15 kB, ~800 events), the load-wide ones fit 2,000 compact use cases
  (`bench/plan_scale.py`). `bench/parse_budget.py` measures the attacks.
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

MAX_FILE_BYTES = 256 * 1024
MAX_NODES_PER_DOCUMENT = 25_000
MAX_EVENTS_PER_FILE = 10_000
MAX_VALUES_PER_FILE = 50_000
# Sized for a fleet: 2,000 compact use cases (about 40 nodes each, as bench/plan_scale.py
# writes them) or about 600 of the shipped examples' size, with room to spare.
MAX_BYTES_PER_LOAD = 1024 * 1024
MAX_EVENTS_PER_LOAD = 100_000
MAX_VALUES_PER_LOAD = 100_000
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


@dataclass
class ParseBudget:
    """What one load of the desired state may still spend on YAML; spent file by file."""

    bytes: int = MAX_BYTES_PER_LOAD
    events: int = MAX_EVENTS_PER_LOAD
    values: int = MAX_VALUES_PER_LOAD

    @property
    def spent(self) -> bool:
        return self.bytes <= 0 or self.events <= 0 or self.values <= 0


class _ExpansionLimitError(Exception):
    """The document would expand to more values than any desired state needs."""


class _OverBudgetError(Exception):
    """The file, or the load, would cost more parsing than any desired state needs."""

    def __init__(self, position: Position | None, message: str, *, load_wide: bool) -> None:
        super().__init__(message)
        self.position = position
        self.message = message
        self.load_wide = load_wide


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

    def __init__(self, stream: str, *, events: int, load_bound: bool) -> None:
        super().__init__(stream)
        self._depth = 0
        self.events = 0
        self._event_limit = events
        self._load_bound = load_bound

    def get_event(self) -> Any:
        # types-PyYAML leaves Parser.get_event untyped.
        event = super().get_event()  # type: ignore[no-untyped-call]
        self.events += 1
        if self.events > self._event_limit:
            mark = event.start_mark
            raise _OverBudgetError(
                Position(mark.line + 1, mark.column + 1),
                f"the desired state holds more than {MAX_EVENTS_PER_LOAD} YAML nodes in all; "
                "refused"
                if self._load_bound
                else f"the file holds more than {MAX_EVENTS_PER_FILE} YAML nodes, far more "
                "than a desired-state file needs; refused",
                load_wide=self._load_bound,
            )
        return event

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

    def __init__(self, file: str, index: int, *, values: int, load_bound: bool) -> None:
        self.file = file
        self.index = index
        self.nodes_seen = 0
        self._value_limit = values
        self._load_bound = load_bound
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self._constructor = yaml.SafeLoader("")
        self._active: set[int] = set()
        # Aliases and merge keys can nest a value deeper than it was written, so the builder
        # keeps its own count of the collections it is inside.
        self._depth = 0

    def build(self, node: Node, path: FieldPath) -> Any:
        self.nodes_seen += 1
        if self.nodes_seen > self._value_limit:
            raise _OverBudgetError(
                _position(node),
                f"the desired state expands to more than {MAX_VALUES_PER_LOAD} values in all "
                "(alias expansion bomb?); refused"
                if self._load_bound
                else f"the documents of this file expand to more than {MAX_VALUES_PER_FILE} "
                "values (alias expansion bomb?); refused",
                load_wide=self._load_bound,
            )
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


def read_yaml_documents(
    file: str, raw: bytes, budget: ParseBudget | None = None
) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Parse every document in a YAML file; errors are returned, never raised.

    `budget` is what the whole load may still spend (a fresh one when not given); what this
    file spends is taken from it."""
    if budget is None:
        budget = ParseBudget()
    text, problems = decode_utf8(file, raw)
    if text is None:
        return [], problems
    if len(raw) > budget.bytes:
        budget.bytes = 0
        message = f"the desired state's files hold more than {MAX_BYTES_PER_LOAD} bytes in all"
        return [], [Diagnostic(file, None, "", f"{message}; refused")]
    budget.bytes -= len(raw)
    loader = _DepthLimitedLoader(
        text,
        events=min(MAX_EVENTS_PER_FILE, budget.events),
        load_bound=budget.events < MAX_EVENTS_PER_FILE,
    )
    documents: list[YamlDocument] = []
    try:
        _compose(loader, file, budget, documents, problems)
    except _OverBudgetError as exc:
        # Nothing after this point of the file is read; with the load's budget spent, the
        # loader reads no further file either.
        problems.append(Diagnostic(file, exc.position, "", exc.message))
        if exc.load_wide:
            budget.events = budget.values = 0
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
    finally:
        budget.events -= loader.events
        loader.dispose()
    return documents, problems


def _compose(
    loader: _DepthLimitedLoader,
    file: str,
    budget: ParseBudget,
    documents: list[YamlDocument],
    problems: list[Diagnostic],
) -> None:
    """Compose and build the documents of one file (as `yaml.compose_all` would), spending
    `budget` on the values built; a refused document is a diagnostic, the others go on."""
    values_left = min(MAX_VALUES_PER_FILE, budget.values)
    load_bound = budget.values < MAX_VALUES_PER_FILE
    index = -1
    while loader.check_node():
        node = loader.get_node()
        index += 1
        if node is None or (isinstance(node, ScalarNode) and node.tag.endswith(":null")):
            continue  # an empty document, e.g. after a trailing '---'
        builder = _Builder(file, index, values=values_left, load_bound=load_bound)
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
        finally:
            values_left -= builder.nodes_seen
            budget.values -= builder.nodes_seen
        documents.append(
            YamlDocument(file, index, _position(node), data, builder.values, builder.keys)
        )
