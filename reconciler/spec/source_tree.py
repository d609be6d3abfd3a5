"""Where desired-state files are read from: a folder on disk, or a commit in a git repository.

Reading a git ref goes through the object database (gitpython), never the working tree, so
`plan --ref main` sees exactly what was committed, whatever is checked out or uncommitted.
"""

from __future__ import annotations

import enum
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.errors import SourceError

YAML_SUFFIXES = (".yaml", ".yml")


class EntryKind(enum.Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    MISSING = "missing"


@dataclass(frozen=True)
class Revision:
    """The commit a tree was read from; `dirty` when a folder has uncommitted changes."""

    commit: str | None
    dirty: bool


class SourceTree(Protocol):
    """Read-only view of a repository's files, by repository-relative POSIX path."""

    description: str
    ref: str | None

    def revision(self) -> Revision: ...

    def yaml_files(self, folder: str) -> list[str]: ...

    def read(self, path: str) -> bytes: ...

    def size(self, path: str) -> int:
        """The size of a file in bytes, known without reading it."""
        ...

    def kind(self, path: str) -> EntryKind: ...

    def escapes(self, path: str) -> bool: ...


def lexically_escapes(path: str) -> bool:
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


class FolderTree:
    """The files of a folder as they are on disk, uncommitted changes included."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise SourceError(f"{root} is not a folder")
        self.root = root.resolve()
        self.description = str(root)
        self.ref: str | None = None

    def revision(self) -> Revision:
        import git

        try:
            repo = git.Repo(self.root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            return Revision(commit=None, dirty=False)
        try:
            commit = repo.head.commit.hexsha
        except ValueError:  # a repository with no commit yet
            return Revision(commit=None, dirty=True)
        relative = os.path.relpath(self.root, repo.working_tree_dir or self.root)
        scope = [] if relative == "." else [relative]
        dirty = repo.is_dirty(untracked_files=True, path=scope[0] if scope else None)
        return Revision(commit=commit, dirty=dirty)

    def yaml_files(self, folder: str) -> list[str]:
        base = self.root / folder
        if not base.is_dir():
            return []
        found = [
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.suffix in YAML_SUFFIXES and p.is_file()
        ]
        return sorted(found)

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def size(self, path: str) -> int:
        return (self.root / path).stat().st_size

    def kind(self, path: str) -> EntryKind:
        target = self.root / path
        if target.is_symlink():
            return EntryKind.SYMLINK if not target.exists() else _kind_of(target)
        return _kind_of(target)

    def escapes(self, path: str) -> bool:
        if lexically_escapes(path):
            return True
        # A symlink inside the repo may still point outside it.
        resolved = (self.root / path).resolve()
        return not resolved.is_relative_to(self.root)


def _kind_of(target: Path) -> EntryKind:
    if target.is_file():
        return EntryKind.FILE
    if target.is_dir():
        return EntryKind.DIRECTORY
    return EntryKind.MISSING


class GitTree:
    """The files of one commit, read from git's object database."""

    def __init__(self, root: Path, ref: str) -> None:
        import git

        try:
            repo = git.Repo(root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise SourceError(f"--ref needs a git repository; {root} is not in one") from exc
        # `repo.commit` takes any forty hex digits on trust: the commit and its tree are only
        # looked up when first read, so both are resolved here, where a missing one is the
        # user's error and not a crash in the middle of reading files.
        try:
            self._commit = repo.commit(ref)
            self._tree = self._commit.tree
        except (git.BadName, ValueError) as exc:
            raise SourceError(
                f"unknown git ref {ref!r}: no commit by that name in the repository at {root}"
            ) from exc
        work = Path(repo.working_tree_dir or root).resolve()
        prefix = os.path.relpath(root.resolve(), work)
        self._prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
        self.description = f"{root}@{ref}"
        self.ref: str | None = ref

    def revision(self) -> Revision:
        return Revision(commit=self._commit.hexsha, dirty=False)

    def _object(self, path: str):  # type: ignore[no-untyped-def]
        try:
            return self._tree / (self._prefix + posixpath.normpath(path))
        except KeyError:
            return None

    def yaml_files(self, folder: str) -> list[str]:
        tree = self._object(folder)
        if tree is None or tree.type != "tree":
            return []
        found = []
        for item in tree.traverse():
            if item.type == "blob" and item.path.endswith(YAML_SUFFIXES):
                found.append(item.path[len(self._prefix) :])
        return sorted(found)

    def read(self, path: str) -> bytes:
        blob = self._object(path)
        if blob is None or blob.type != "blob":
            raise FileNotFoundError(path)
        data: bytes = blob.data_stream.read()
        return data

    def size(self, path: str) -> int:
        blob = self._object(path)
        if blob is None or blob.type != "blob":
            raise FileNotFoundError(path)
        return int(blob.size)

    def kind(self, path: str) -> EntryKind:
        obj = self._object(path)
        if obj is None:
            return EntryKind.MISSING
        if obj.type == "tree":
            return EntryKind.DIRECTORY
        if obj.mode == 0o120000:
            return EntryKind.SYMLINK
        return EntryKind.FILE

    def escapes(self, path: str) -> bool:
        return lexically_escapes(path)


def open_tree(root: Path, ref: str | None) -> SourceTree:
    if not root.exists():
        raise SourceError(f"repository folder {root} does not exist")
    return GitTree(root, ref) if ref else FolderTree(root)
