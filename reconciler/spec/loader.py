"""Loading the desired state: read, validate, and record what it was built from.

`load_desired_state` never raises for problems in the files: it returns every diagnostic it
found and a `DesiredState` only when there were none. It raises `SourceError` only when the
source itself cannot be read (no such folder, unknown ref).

One load has one `ParseBudget` for all its YAML, and each dataset a size cap, so a crafted
repository is refused in about a second rather than read for minutes; a problem repeated a
thousand times is reported a few times and summarised (`summarise_repeats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from reconciler.digest import digest_bytes
from reconciler.errors import SourceError
from reconciler.spec.datasets import DatasetKind, read_dataset
from reconciler.spec.diagnostics import Diagnostic, Position, has_errors, summarise_repeats
from reconciler.spec.identity import UseCaseIdentity, identify
from reconciler.spec.model import GuardrailPolicy, Notifications, UseCase
from reconciler.spec.source_tree import EntryKind, SourceTree, open_tree
from reconciler.spec.validation import (
    ValidDocument,
    cross_check,
    dataset_paths,
    validate_document,
)
from reconciler.spec.yaml_source import ParseBudget, YamlDocument, read_yaml_documents

DESIRED_STATE_FOLDER = "desired_state"
POLICIES_FOLDER = "policies"
# Datasets live in git beside the desired state and are read whole on every load; bigger
# data belongs in the request log or an artifact store, not in a pull request.
MAX_DATASET_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class SourceInfo:
    """What a desired state was read from: enough to read the very same state again."""

    repo: str
    ref: str | None
    commit: str | None
    dirty: bool
    digest: str


@dataclass(frozen=True)
class DesiredState:
    source: SourceInfo
    use_cases: tuple[UseCase, ...]
    policies: tuple[GuardrailPolicy, ...]
    identities: Mapping[str, UseCaseIdentity]
    dataset_digests: Mapping[str, str]
    origins: Mapping[str, str] = field(default_factory=dict)
    # The bytes the digests were taken of: training and evaluation read these, never the
    # working tree, so `apply --ref` trains on exactly the commit it planned from.
    dataset_contents: Mapping[str, bytes] = field(default_factory=dict)
    notifications: tuple[Notifications, ...] = ()

    def use_case(self, name: str) -> UseCase:
        for use_case in self.use_cases:
            if use_case.name == name:
                return use_case
        raise KeyError(name)

    def policy(self, name: str) -> GuardrailPolicy:
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(name)

    def dataset_text(self, path: str) -> str:
        """A dataset the desired state names, as read with it (UTF-8)."""
        try:
            return self.dataset_contents[path].decode("utf-8")
        except KeyError:
            raise KeyError(f"{path} is not a dataset of this desired state") from None


@dataclass(frozen=True)
class LoadResult:
    state: DesiredState | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.state is not None


def load_desired_state(repo: Path, ref: str | None = None) -> LoadResult:
    tree = open_tree(repo, ref)
    return load_from_tree(tree, repo_label=str(repo))


def load_from_tree(tree: SourceTree, *, repo_label: str) -> LoadResult:
    files = tree.yaml_files(DESIRED_STATE_FOLDER) + tree.yaml_files(POLICIES_FOLDER)
    if tree.kind(DESIRED_STATE_FOLDER) is not EntryKind.DIRECTORY:
        raise SourceError(
            f"no {DESIRED_STATE_FOLDER}/ folder in {tree.description}; "
            "--repo names the folder that holds desired_state/ and policies/"
        )
    diagnostics: list[Diagnostic] = []
    read: list[YamlDocument] = []
    valid: list[ValidDocument] = []
    content_digests: dict[str, str] = {}
    budget = ParseBudget()
    for position, path in enumerate(files):
        if budget.spent:
            unread = len(files) - position
            diagnostics.append(
                Diagnostic(
                    path,
                    None,
                    "",
                    f"this and {unread - 1} more file(s) not read: the "
                    "desired state is over its parse budget (see above)",
                )
            )
            break
        # In a commit a symlink's blob is its target's name, not the target's YAML; on disk
        # one may lead out of the repository. Either way the file would not be what is read.
        if tree.kind(path) is EntryKind.SYMLINK:
            diagnostics.append(
                Diagnostic(path, None, "", "file is a symbolic link; commit the file itself")
            )
            continue
        if tree.escapes(path):
            diagnostics.append(
                Diagnostic(
                    path, None, "", "file points outside the repository (through a symbolic link)"
                )
            )
            continue
        raw = tree.read(path)
        content_digests[path] = digest_bytes(raw)
        documents, problems = read_yaml_documents(path, raw, budget)
        diagnostics += problems
        read += documents
        for document in documents:
            checked, problems = validate_document(document)
            diagnostics += problems
            if checked is not None:
                valid.append(checked)
    diagnostics += cross_check(read, valid, tree)
    diagnostics.sort(key=Diagnostic.sort_key)
    if has_errors(diagnostics):
        return LoadResult(None, summarise_repeats(diagnostics))

    use_cases = sorted(
        (d.value for d in valid if isinstance(d.value, UseCase)), key=lambda u: u.name
    )
    policies = sorted(
        (d.value for d in valid if isinstance(d.value, GuardrailPolicy)), key=lambda p: p.name
    )
    notifications = sorted(
        (d.value for d in valid if isinstance(d.value, Notifications)), key=lambda n: n.name
    )
    paths = sorted({path for use_case in use_cases for path in dataset_paths(use_case)})
    oversized = [
        Diagnostic(
            path,
            None,
            "",
            f"dataset is {size} bytes; datasets are limited to {MAX_DATASET_BYTES} bytes "
            "(keep large data out of git: historical logs come from the request log)",
        )
        for path in paths
        if (size := tree.size(path)) > MAX_DATASET_BYTES
    ]
    if oversized:
        return LoadResult(None, tuple(diagnostics + oversized))
    contents = {path: tree.read(path) for path in paths}
    dataset_problems = [
        Diagnostic(path, Position(problem.line, 1), "", problem.message)
        for path, kind in sorted(_dataset_kinds(use_cases).items())
        if path in contents
        for problem in read_dataset(contents[path], kind)[1]
    ]
    if dataset_problems:
        return LoadResult(None, summarise_repeats(diagnostics + dataset_problems))
    datasets = {path: digest_bytes(raw) for path, raw in contents.items()}
    policy_json = {p.name: p.model_dump(mode="json", by_alias=True) for p in policies}
    identities = {
        use_case.name: identify(
            use_case,
            {path: datasets[path] for path in dataset_paths(use_case)},
            [policy_json[name] for name in use_case.spec.guardrails],
        )
        for use_case in use_cases
    }
    everything = sorted({**content_digests, **datasets}.items())
    digest = digest_bytes("".join(f"{path}\0{sha}\n" for path, sha in everything).encode())
    revision = tree.revision()
    source = SourceInfo(
        repo=repo_label,
        ref=tree.ref,
        commit=revision.commit,
        dirty=revision.dirty,
        digest=digest,
    )
    origins = {d.value.name: d.source.file for d in valid if isinstance(d.value, UseCase)}
    state = DesiredState(
        source=source,
        use_cases=tuple(use_cases),
        policies=tuple(policies),
        identities=MappingProxyType(identities),
        dataset_digests=MappingProxyType(datasets),
        origins=MappingProxyType(origins),
        dataset_contents=MappingProxyType(contents),
        notifications=tuple(notifications),
    )
    return LoadResult(state, tuple(diagnostics))


def _dataset_kinds(use_cases: list[UseCase]) -> dict[str, DatasetKind]:
    kinds: dict[str, DatasetKind] = {}
    for use_case in use_cases:
        if use_case.spec.training.data.initial:
            kinds[use_case.spec.training.data.initial] = DatasetKind.TRAINING
        kinds[use_case.spec.evaluation.prompts] = DatasetKind.EVALUATION
    return kinds
