"""Files under the state folder are private: the folder 0700, its files 0600.

The request log holds players' prompts (personal data), the route table decides who serves
them; neither is anyone else's to read on a shared machine. SQLite creates its database with
the process umask (usually 0644) and gives the -wal and -shm files the database's mode, so the
database file is made before SQLite opens it, with owner-only bits.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_folder(path: Path) -> None:
    """Create `path` (and missing parents) when missing; the folder itself owner-only.

    An existing folder keeps its mode: it may be one the operator shares on purpose, and
    the files made in it are private anyway."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it first
        path.mkdir(mode=PRIVATE_FOLDER_MODE)


def private_file(path: Path) -> None:
    """Make `path` owner-only (0600), creating it empty when missing."""
    private_folder(path.parent)
    descriptor = os.open(path, os.O_CREAT | os.O_RDONLY, PRIVATE_FILE_MODE)
    try:
        _tighten(descriptor)
    finally:
        os.close(descriptor)


def private_database(path: Path) -> None:
    """A SQLite database and its companion files, owner-only (see the module docstring)."""
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError, PermissionError):
            descriptor = os.open(companion, os.O_RDONLY)
            try:
                _tighten(descriptor)
            finally:
                os.close(descriptor)


def _tighten(descriptor: int) -> None:
    # Made by an older version, or under a looser umask: owner-only from now on. A file of
    # another user's is left as it is (chmod would fail, and it is not ours to change).
    if os.fstat(descriptor).st_mode & 0o077:
        with contextlib.suppress(PermissionError):
            os.fchmod(descriptor, PRIVATE_FILE_MODE)
