"""The desired-state edits a proposal makes, and the desired state they would give.

Edits are made on the files' text (see `yaml_edit`), checked to read back as intended, and
the whole edited desired state is loaded and validated like any commit before it is
proposed - a proposal that would not validate is refused, never pushed.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.propose.yaml_edit import append_to_sequence, prepend_to_sequence, verify_edit
from reconciler.spec.loader import (
    DESIRED_STATE_FOLDER,
    POLICIES_FOLDER,
    DesiredState,
    load_desired_state,
)
from reconciler.spec.yaml_source import read_yaml_documents


def _document(text: str, file: str, use_case: str) -> tuple[int, dict[str, Any]]:
    documents, problems = read_yaml_documents(file, text.encode("utf-8"))
    if problems:
        raise ReconcilerError(f"{file} does not read as YAML; fix it first")
    for document in documents:
        data = document.data
        if (
            isinstance(data, dict)
            and data.get("kind") == "UseCase"
            and isinstance(data.get("metadata"), dict)
            and data["metadata"].get("name") == use_case
        ):
            return document.index, data
    raise ReconcilerError(f"use case {use_case} is not in {file}")


def prepend_model(
    texts: MutableMapping[str, str], file: str, use_case: str, entry: Mapping[str, Any]
) -> None:
    before = texts[file]
    index, data = _document(before, file, use_case)
    after = prepend_to_sequence(before, index, "acceptableModels", entry)
    expected = [dict(entry), *data["spec"]["acceptableModels"]]
    verify_edit(
        before, after, file=file, document_index=index, key="acceptableModels", expected=expected
    )
    texts[file] = after


def append_rejections(
    texts: MutableMapping[str, str],
    file: str,
    use_case: str,
    entries: Sequence[Mapping[str, Any]],
) -> None:
    for entry in entries:
        before = texts[file]
        index, data = _document(before, file, use_case)
        after = append_to_sequence(before, index, "rejected", entry)
        expected = [*data["spec"].get("rejected", []), dict(entry)]
        verify_edit(
            before, after, file=file, document_index=index, key="rejected", expected=expected
        )
        texts[file] = after


def load_edited(repo: Path, desired: DesiredState, texts: Mapping[str, str]) -> DesiredState:
    """The desired state as it would be with `texts` (path -> content) written."""
    with tempfile.TemporaryDirectory(prefix="reconciler-proposal-") as tmp:
        scratch = Path(tmp)
        for folder in (DESIRED_STATE_FOLDER, POLICIES_FOLDER):
            if (repo / folder).is_dir():
                shutil.copytree(repo / folder, scratch / folder, symlinks=True)
        for path, content in desired.dataset_contents.items():  # datasets may live elsewhere
            target = scratch / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        for path, text in texts.items():
            target = scratch / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        loaded = load_desired_state(scratch)
    if loaded.state is None:
        shown = "; ".join(d.render() for d in loaded.diagnostics[:5])
        raise ReconcilerError(f"the proposed edit would not validate: {shown}")
    return loaded.state


def unified_diff(before: str, after: str, file: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{file}",
            tofile=f"b/{file}",
        )
    )
