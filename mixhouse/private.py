"""The data folder is owner-only: it holds project secrets, tokens and API keys (catalog.sqlite3) and
every event. Folders are made 0700 and files 0600, including ones from before this rule, and the
server runs with umask 077 so that files the engines create later (WALs, spill files) are private too."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077


def private_dir(path: Path) -> Path:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _restrict(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create the file owner-only if it is missing (before a library opens it with default modes)."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    _restrict(path, FILE_MODE)
    return path


def restrict_existing(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = folder / name
        if path.exists():
            _restrict(path, DIR_MODE if path.is_dir() else FILE_MODE)


def _restrict(path: Path, mode: int) -> None:
    try:
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except PermissionError:
        pass  # not ours to change (a shared mount): leave it as the operator set it
