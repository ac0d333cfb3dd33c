"""What a backup holds and how it is made and put back.

A backup is a folder: `catalog.sqlite3` (SQLite's online backup API: a consistent copy while the server
writes), `events.duckdb` (the engine's consistent copy, see Engine.backup), the GDPR retrieval files, and
`backup.json` written last: a folder without it is an unfinished backup and is never restored.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from mixhouse.catalog import CATALOG_FILE
from mixhouse.errors import MixhouseError
from mixhouse.gdpr.kinds import RETRIEVALS_DIR
from mixhouse.private import private_dir

EVENTS_FILE = "events.duckdb"
MANIFEST = "backup.json"

EngineCopy = Callable[[Path], dict[str, int]]  # writes the event store's copy to a new file: its row counts


class BackupError(MixhouseError):
    """A backup or restore that cannot be made: the command prints the message and exits with status 1."""

    code = "backup_refused"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_folder(to: Path) -> None:
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise BackupError(f"{to} exists and is not an empty folder: back up into a new one")
    private_dir(to)


def _undo(to: Path, *, created: bool) -> None:
    """Take away what a failed backup wrote: the folder itself if the backup made it, else (it was empty
    before) its contents."""
    if created:
        shutil.rmtree(to, ignore_errors=True)
        return
    for child in to.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _copy_catalog(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def check_backup_source(data_dir: Path) -> None:
    """Refuse a folder that is no data dir, and one whose catalog is not in it (a shared PostgreSQL
    catalog, `--catalog-url`), which `mixhouse backup` cannot copy."""
    if (data_dir / CATALOG_FILE).is_file():
        return
    if (data_dir / EVENTS_FILE).is_file():
        raise BackupError(
            f"the catalog of {data_dir} is not in it (a shared PostgreSQL catalog, --catalog-url): mixhouse "
            "backup copies a data dir together with its SQLite catalog; back a shared catalog up with pg_dump "
            "(docs/scale-out.md)"
        )
    raise BackupError(f"no mixhouse data dir at {data_dir}")


def make_backup(data_dir: Path, to: Path, copy_events: EngineCopy, *, online: bool) -> dict[str, Any]:
    """Write a backup of `data_dir` into the new folder `to`; `copy_events` copies the event store. The
    event store's copy starts first: everything acknowledged before the call is in it."""
    check_backup_source(data_dir)
    created = not to.exists()
    _new_folder(to)
    started = time.time()
    try:
        counts = copy_events(to / EVENTS_FILE)
        _copy_catalog(data_dir / CATALOG_FILE, to / CATALOG_FILE)
        retrievals = data_dir / RETRIEVALS_DIR
        if retrievals.is_dir():
            shutil.copytree(retrievals, to / RETRIEVALS_DIR)
        for name in (EVENTS_FILE, CATALOG_FILE):
            _fsync(to / name)
    except BaseException:
        _undo(to, created=created)  # a refused or failed backup leaves no half-written folder behind
        raise
    manifest = {
        "mixhouse": version("mixhouse"),
        "started_at": round(started, 3),
        "seconds": round(time.time() - started, 3),
        "online": online,
        "source": str(data_dir.resolve()),
        "rows": counts,
    }
    (to / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    _fsync(to / MANIFEST)
    _fsync(to)
    return manifest


def read_manifest(backup: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = orjson.loads((backup / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{backup} is not a finished mixhouse backup (no {MANIFEST})") from None
    for name in (CATALOG_FILE, EVENTS_FILE):
        if not (backup / name).is_file():
            raise BackupError(f"{backup} is missing {name}")
    return manifest


def restore(backup: Path, data_dir: Path, counts: Callable[[Path], dict[str, int]]) -> dict[str, Any]:
    """Copy the backup into `data_dir`, which must hold no store (a restore never overwrites one), and
    check the restored event store's row counts against the manifest. `counts` reads a store's counts."""
    manifest = read_manifest(backup)
    if data_dir.exists() and any((data_dir / name).exists() for name in (CATALOG_FILE, EVENTS_FILE)):
        raise BackupError(f"{data_dir} already holds a store: restore into a new folder (move the old one aside)")
    private_dir(data_dir)
    events, catalog = data_dir / f"{EVENTS_FILE}.restoring", data_dir / f"{CATALOG_FILE}.restoring"
    shutil.copyfile(backup / EVENTS_FILE, events)
    found = counts(events)
    if found != manifest["rows"]:
        events.unlink()
        raise BackupError(f"the backup's event store holds {found} rows, its manifest says {manifest['rows']}")
    shutil.copyfile(backup / CATALOG_FILE, catalog)
    if (backup / RETRIEVALS_DIR).is_dir():
        shutil.copytree(backup / RETRIEVALS_DIR, data_dir / RETRIEVALS_DIR, dirs_exist_ok=True)
    for path in (events, catalog):
        path.chmod(0o600)
        _fsync(path)
    # The catalog last: a folder without it is no data dir (`mixhouse serve` would start a new one).
    events.rename(data_dir / EVENTS_FILE)
    catalog.rename(data_dir / CATALOG_FILE)
    _fsync(data_dir)
    return {"restored": str(data_dir), "rows": found, "backup_started_at": manifest["started_at"]}
