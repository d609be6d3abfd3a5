"""Files in the state folder hold prompts, routes and decisions: only their owner reads them.

The folder is created 0700 and each store's file 0600 before SQLite opens it (SQLite gives
its `-wal` and `-shm` files the database file's mode).
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> Path:
    """Create `path` (and its parents) readable by the owner only, if it does not exist."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        os.chmod(path, FOLDER_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> Path:
    """Create the empty file `path` as 0600 (in a private folder) unless it exists."""
    private_folder(path.parent)
    if not path.exists():
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        except FileExistsError:
            return path  # another process created it first
        os.close(descriptor)
    return path


def private_database(path: Path) -> Path:
    """`private_file` for a SQLite database, and owner-only even when it exists already:
    an older version, or another umask, may have left it (and its -wal, -shm and -journal
    files) readable by others. A file of another user's is left as it is."""
    private_file(path)
    for candidate in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            if candidate.stat().st_mode & 0o077:
                os.chmod(candidate, FILE_MODE)
        except (FileNotFoundError, PermissionError):
            continue
    return path
