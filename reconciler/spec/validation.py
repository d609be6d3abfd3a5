"""Validation: every problem in the desired state, each with file, line, column and field.

Two passes. `validate_document` checks one YAML document against the model and turns
pydantic's errors into diagnostics at the exact place in the file. `cross_check` then looks
across documents and at the repository: names that must be unique, guardrail policies that
must exist, paths that must stay inside the repository and exist. It reads every document,
including those the first pass refused, so one run reports every problem.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_snake as _to_snake
from pydantic_core import ErrorDetails

from reconciler.spec.base import NestedFieldError
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import (
    API_VERSION,
    DOCUMENT_KINDS,
    DocumentModel,
    GuardrailPolicy,
    ModelSource,
    UseCase,
)
from reconciler.spec.source_tree import EntryKind, SourceTree
from reconciler.spec.yaml_source import FieldPath, YamlDocument, format_field_path

_FRIENDLY = {
    "missing": "required field is missing",
    "int_from_float": "must be a whole number",
    "int_parsing": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_PATTERN_HINTS = {
    "revision": "must be a full 40-character commit sha (branches and tags move, so they are "
    "not pinned)",
    "name": "must be lower-case letters, digits and '-', starting and ending alphanumeric "
    "(at most 63 characters)",
    "registeredModel": "must be letters, digits, '.', '_' and '-', starting alphanumeric",
    "apiKeyEnv": "must be an environment variable name such as PROVIDER_API_KEY",
    "baseUrlEnv": "must be an environment variable name such as PROVIDER_BASE_URL",
    "bakeTime": "must be a duration such as 90s, 30m, 1h30m or 7d",
    "progressDeadline": "must be a duration such as 90s, 30m, 1h30m or 7d",
    "since": "must be a duration such as 90s, 30m, 1h30m or 7d",
    "minimumReleaseAge": "must be a duration such as 90s, 30m, 1h30m or 7d",
    "key": "must be a version's key tag: sha256: and 64 hex digits",
    "baseUrl": "must be an http:// or https:// URL",
}


@dataclass(frozen=True)
class ValidDocument:
    """A document that passed its own checks, with where it came from."""

    source: YamlDocument
    value: DocumentModel


@functools.cache
def _known_field_names() -> tuple[str, ...]:
    from reconciler.spec.schema import property_names

    return tuple(sorted(property_names()))


def _data_path(data: Any, loc: Sequence[str | int]) -> FieldPath:
    """Drop the union tags pydantic puts in `loc` (e.g. 'huggingface') that are not in the data."""
    path: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(current, dict):
            if part in current:
                path.append(part)
                current = current[part]
            elif last:
                path.append(part)
            # else: a discriminator tag, not a key of the data
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            path.append(part)
            current = current[part]
        else:
            path.append(part)
            current = None
    return tuple(path)


def _message(error: ErrorDetails, path: FieldPath) -> str:
    kind = error["type"]
    field_name = next((p for p in reversed(path) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(path[-1]), _known_field_names(), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown field {path[-1]!r}{hint}"
    if kind == "string_pattern_mismatch" and field_name in _PATTERN_HINTS:
        return _PATTERN_HINTS[field_name]
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _diagnostics_from(exc: ValidationError, document: YamlDocument) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, NestedFieldError):
            for sub_path, message in cause.problems:
                path = _data_path(document.data, (*loc, *sub_path))
                found.append(_at(document, path, message))
            continue
        path = _data_path(document.data, loc)
        message = _message(error, path)
        if error["type"] == "extra_forbidden":
            found.append(_at(document, path, message, prefer_key=True))
        elif error["type"] == "missing":
            found.append(
                Diagnostic(
                    document.file,
                    document.position_of(path[:-1]),
                    format_field_path(path),
                    message,
                )
            )
        else:
            found.append(_at(document, path, message))
    return found


def _at(
    document: YamlDocument, path: FieldPath, message: str, *, prefer_key: bool = False
) -> Diagnostic:
    return Diagnostic(
        document.file,
        document.position_of(path, prefer_key=prefer_key),
        format_field_path(path),
        message,
    )


def validate_document(document: YamlDocument) -> tuple[ValidDocument | None, list[Diagnostic]]:
    data = document.data
    if not isinstance(data, dict):
        return None, [Diagnostic(document.file, document.start, "", "a document must be a mapping")]
    header: list[Diagnostic] = []
    if data.get("apiVersion") != API_VERSION:
        shown = "missing" if "apiVersion" not in data else f"{data['apiVersion']!r} is unknown"
        header.append(_at(document, ("apiVersion",), f"{shown}; expected {API_VERSION!r}"))
    kind = data.get("kind")
    model = DOCUMENT_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        shown = "missing" if kind is None else f"{kind!r} is unknown"
        expected = ", ".join(DOCUMENT_KINDS)
        header.append(_at(document, ("kind",), f"{shown}; expected one of {expected}"))
        return None, header
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        problems = _diagnostics_from(exc, document)
        # The header check above already reported a wrong apiVersion.
        problems = [p for p in problems if p.field != "apiVersion"]
        return None, header + problems
    if header:
        return None, header
    return ValidDocument(document, value), []


# Field names are few and read once per use case each: a desired state of thousands of use
# cases would otherwise spend most of its validation converting the same names.
to_snake = functools.lru_cache(maxsize=512)(_to_snake)


def _field(mapping: Any, name: str) -> tuple[str, Any] | None:
    """`mapping[name]` under its YAML (camelCase) or Python (snake_case) spelling.

    The model accepts both spellings (`populate_by_name`), so reading raw data must too.
    """
    if not isinstance(mapping, dict):
        return None
    for key in (name, to_snake(name)):
        if key in mapping:
            return key, mapping[key]
    return None


def _lookup(data: Any, names: FieldPath) -> tuple[FieldPath, Any] | None:
    """The value at `names` in raw document data, with the keys as they were written."""
    path: list[str | int] = []
    current = data
    for name in names:
        found = _field(current, str(name))
        if found is None:
            return None
        key, current = found
        path.append(key)
    return tuple(path), current


def _text_at(data: Any, names: FieldPath) -> tuple[FieldPath, str] | None:
    """A non-empty string at `names`; anything else is the model's to report, not ours."""
    found = _lookup(data, names)
    if found is None or not isinstance(found[1], str) or not found[1]:
        return None
    return found[0], found[1]


def _named_paths(data: Any) -> Iterable[tuple[FieldPath, str, bool]]:
    """(field path, repository path, must exist) for every path a use case's data names."""
    for names in (("spec", "training", "data", "initial"), ("spec", "evaluation", "prompts")):
        found = _text_at(data, names)
        if found is not None:
            yield found[0], found[1], True
    models = _lookup(data, ("spec", "acceptableModels"))
    if models is None or not isinstance(models[1], list):
        return
    for i, model in enumerate(models[1]):
        source = _field(model, "source")
        path = _text_at(model, ("path",))
        if source is not None and source[1] == ModelSource.LOCAL.value and path is not None:
            # Model folders are build outputs (git-ignored); they must exist when applied.
            yield (*models[0], i, *path[0]), path[1], False


def dataset_paths(use_case: UseCase) -> list[str]:
    # Read through the same raw-data walk as `cross_check`, so the files that are checked
    # and the files that are digested can never disagree.
    data = use_case.model_dump(mode="json", by_alias=True)
    return [path for _, path, must_exist in _named_paths(data) if must_exist]


@dataclass(frozen=True)
class _Facts:
    """What the cross-document checks need from one document, read from its raw data.

    Raw data rather than the validated model, so a document with a schema error still has its
    names, policy references and paths checked in the same run. A field that is absent or not
    of its type is left out here; validating the document already reported it.
    """

    source: YamlDocument
    kind: str
    name: tuple[FieldPath, str] | None
    registered_model: tuple[FieldPath, str] | None
    guardrails: tuple[tuple[FieldPath, str], ...]
    paths: tuple[tuple[FieldPath, str, bool], ...]
    # Notifications: each webhook's name, and the use cases it names.
    webhooks: tuple[tuple[FieldPath, str], ...] = ()
    use_case_references: tuple[tuple[FieldPath, str], ...] = ()


def _facts(document: YamlDocument) -> _Facts | None:
    data = document.data
    kind = _field(data, "kind")
    if kind is None or not isinstance(kind[1], str) or kind[1] not in DOCUMENT_KINDS:
        return None
    guardrails: list[tuple[FieldPath, str]] = []
    listed = _lookup(data, ("spec", "guardrails"))
    if listed is not None and isinstance(listed[1], list):
        guardrails = [
            ((*listed[0], i), name) for i, name in enumerate(listed[1]) if isinstance(name, str)
        ]
    is_use_case = kind[1] == "UseCase"
    webhooks, references = _webhook_facts(data) if kind[1] == "Notifications" else ([], [])
    return _Facts(
        source=document,
        kind=kind[1],
        name=_text_at(data, ("metadata", "name")),
        registered_model=_text_at(data, ("spec", "registeredModel")) if is_use_case else None,
        guardrails=tuple(guardrails) if is_use_case else (),
        paths=tuple(_named_paths(data)) if is_use_case else (),
        webhooks=tuple(webhooks),
        use_case_references=tuple(references),
    )


def _webhook_facts(
    data: Any,
) -> tuple[list[tuple[FieldPath, str]], list[tuple[FieldPath, str]]]:
    """(name of each webhook, each use case a webhook names), with their field paths."""
    listed = _lookup(data, ("spec", "webhooks"))
    if listed is None or not isinstance(listed[1], list):
        return [], []
    names, references = [], []
    for i, webhook in enumerate(listed[1]):
        found = _text_at(webhook, ("name",))
        if found is not None:
            names.append(((*listed[0], i, *found[0]), found[1]))
        use_cases = _lookup(webhook, ("useCases",))
        if use_cases is not None and isinstance(use_cases[1], list):
            references += [
                ((*listed[0], i, *use_cases[0], j), name)
                for j, name in enumerate(use_cases[1])
                if isinstance(name, str)
            ]
    return names, references


def cross_check(
    documents: Sequence[YamlDocument], valid: Sequence[ValidDocument], tree: SourceTree
) -> list[Diagnostic]:
    """Checks across `documents` (all that were read, valid or not) and against the tree.

    `valid` are the documents that passed `validate_document`; checks that need the typed
    model (guardrail check parameters) run on those only.
    """
    facts = [f for f in map(_facts, documents) if f is not None]
    use_cases = [f for f in facts if f.kind == "UseCase"]
    policies = [f for f in facts if f.kind == "GuardrailPolicy"]
    notifications = [f for f in facts if f.kind == "Notifications"]

    problems: list[Diagnostic] = []
    problems += _duplicates([f.name for f in use_cases], use_cases, "use case")
    problems += _duplicates([f.registered_model for f in use_cases], use_cases, "registered model")
    problems += _duplicates([f.name for f in policies], policies, "policy")
    problems += _duplicates(
        [f.name for f in notifications], notifications, "Notifications document"
    )
    # Webhook names are unique across documents: deliveries and failures are reported by name.
    webhook_facts = [f for f in notifications for _ in f.webhooks]
    problems += _duplicates(
        [w for f in notifications for w in f.webhooks], webhook_facts, "webhook"
    )
    use_case_names = sorted({f.name[1] for f in use_cases if f.name is not None})
    for document in notifications:
        for field_path, name in document.use_case_references:
            if name not in use_case_names:
                known = ", ".join(use_case_names) or "none are defined"
                problems.append(
                    _at(document.source, field_path, f"unknown use case {name!r} (known: {known})")
                )

    problems += _check_parameter_problems(
        [d for d in valid if isinstance(d.value, GuardrailPolicy)]
    )

    # A policy with a schema error still exists by name: its use cases should not also be told
    # that it is unknown.
    policy_names = sorted({f.name[1] for f in policies if f.name is not None})
    for use_case in use_cases:
        for field_path, name in use_case.guardrails:
            if name not in policy_names:
                known = ", ".join(policy_names) or "none are defined"
                problems.append(
                    _at(
                        use_case.source,
                        field_path,
                        f"unknown guardrail policy {name!r} (known: {known})",
                    )
                )
        for field_path, path, must_exist in use_case.paths:
            message = _path_problem(tree, path, must_exist=must_exist)
            if message:
                problems.append(_at(use_case.source, field_path, message))
    return problems


def _check_parameter_problems(policies: list[ValidDocument]) -> list[Diagnostic]:
    # Each check type's parameters are typed by the guardrails package that runs them; its
    # parameter models are light (pydantic only), so validation stays torch-free.
    from reconciler.spec.guardrail_parameters import parameter_problems

    problems = []
    for doc in policies:
        policy = doc.value
        assert isinstance(policy, GuardrailPolicy)
        for i, guardrail_check in enumerate(policy.spec.checks):
            for sub_path, message in parameter_problems(guardrail_check):
                path = _data_path(doc.source.data, ("spec", "checks", i, "parameters", *sub_path))
                problems.append(_at(doc.source, path, message))
    return problems


def _path_problem(tree: SourceTree, path: str, *, must_exist: bool) -> str | None:
    if path.startswith("/") or path.startswith("\\") or (len(path) > 1 and path[1] == ":"):
        return f"{path!r} is absolute; paths are relative to the repository root"
    if "\\" in path:
        return f"{path!r} uses '\\'; write paths with '/'"
    if tree.escapes(path):
        return f"{path!r} points outside the repository"
    if not must_exist:
        return None
    kind = tree.kind(path)
    if kind is EntryKind.MISSING:
        return f"{path!r} does not exist in the repository"
    if kind is EntryKind.DIRECTORY:
        return f"{path!r} is a folder; a file is expected"
    if kind is EntryKind.SYMLINK:
        return f"{path!r} is a symbolic link; commit the file itself"
    return None


def _duplicates(
    values: list[tuple[FieldPath, str] | None], facts: list[_Facts], what: str
) -> list[Diagnostic]:
    """Each repeat of a value, reported at the repeat and pointing at the first."""
    first_seen: dict[str, tuple[YamlDocument, FieldPath]] = {}
    problems: list[Diagnostic] = []
    for found, fact in zip(values, facts, strict=True):
        if found is None:
            continue
        field_path, value = found
        if value in first_seen:
            first, first_path = first_seen[value]
            where = first.position_of(first_path)
            problems.append(
                _at(
                    fact.source,
                    field_path,
                    f"duplicate {what} {value!r} (also defined at {first.file}:{where.line})",
                )
            )
        else:
            first_seen[value] = (fact.source, field_path)
    return problems
