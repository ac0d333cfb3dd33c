"""The event store's version stamp and the migrations between versions.

`engine_meta` holds `schema_version`. A store written before the stamp existed is version 1. On open:

- a new store gets `SCHEMA` (the latest layout) and the current version at once;
- an older store runs each pending step in order, each in one transaction together with its new stamp, so
  a step is either done and stamped or not at all: a server killed mid-step (kill -9) rolls the step back
  when it reopens and runs it again from the start;
- a store stamped with a version newer than this code refuses to open (an older binary must not write it).

Progress goes to the log (a warning, so that the default log level shows it): one line when a step starts
and one when it is committed, with its time.

To add a version, append a `Migration` to `MIGRATIONS` (its `version` one more than the last) whose `apply`
brings a store of the previous version to the new layout; `SCHEMA` describes the new layout for new stores.
On an older store `SCHEMA` runs before the pending steps (its `CREATE ... IF NOT EXISTS` leave existing
tables alone), so a step finds the tables new in its version already created, empty: it fills them and
changes the existing ones (`ALTER TABLE`, `UPDATE`). tests/test_upgrade.py upgrades a store written
before the stamp through every step and compares its answers with the ones that version gave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from mixhouse.engine.duckdb import property_counts
from mixhouse.engine.duckdb.dedup import fill_superseded
from mixhouse.engine.duckdb.schema import SCHEMA, add_user_keys
from mixhouse.errors import MixhouseError

log = logging.getLogger(__name__)

VERSION_KEY = "schema_version"
UNSTAMPED_VERSION = 1  # stores written before the stamp


class StoreTooNew(MixhouseError):
    """The store was written by a newer version of mixhouse: the server refuses to start."""

    code = "store_too_new"


@dataclass(frozen=True)
class Migration:
    version: int  # the store's version once this step is committed
    description: str  # for the log
    apply: Callable[[duckdb.DuckDBPyConnection], None]  # runs inside the step's transaction


def _stamp_v2(conn: duckdb.DuckDBPyConnection) -> None:
    """The upgrades an unstamped store may still need (each a no-op where done): the user-key columns
    (stores older than them) and the list of superseded copies (stores older than it)."""
    add_user_keys(conn)
    fill_superseded(conn)


MIGRATIONS: list[Migration] = [
    Migration(2, "version stamp (user keys and superseded copies filled where missing)", _stamp_v2),
    Migration(3, "property key counts per hour and event (property_counts.py)", property_counts.rebuild),
    Migration(4, "the property key counts' watermark (property_counts.py)", property_counts.cover_all),
    # Next: Migration(5, "...", migrate) -- a step's `apply(conn)` gets the write connection inside the
    # step's transaction; it must not commit. Add it here and describe the layout in SCHEMA.
]

CURRENT_VERSION = MIGRATIONS[-1].version if MIGRATIONS else UNSTAMPED_VERSION


def stored_version(conn: duckdb.DuckDBPyConnection) -> int | None:
    """The store's version: None for a new store (no events table yet), 1 for a store without a stamp."""
    tables = {
        str(r[0])
        for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    }
    if "events" not in tables:
        return None
    if "engine_meta" not in tables:
        return UNSTAMPED_VERSION
    rows = conn.execute("SELECT value FROM engine_meta WHERE key = ?", [VERSION_KEY]).fetchall()
    row = rows[0] if rows else None  # fetchall: an unread result keeps its transaction open
    return int(row[0]) if row else UNSTAMPED_VERSION


def _set_version(conn: duckdb.DuckDBPyConnection, version: int) -> None:
    conn.execute("INSERT OR REPLACE INTO engine_meta VALUES (?, ?)", [VERSION_KEY, str(version)])


def open_store(
    conn: duckdb.DuckDBPyConnection,
    *,
    migrations: list[Migration] | None = None,
    drill_pause_seconds: float = 0.0,
) -> int:
    """Create or upgrade the store on `conn`; returns its version. `drill_pause_seconds` (the
    migration_drill_pause_seconds setting, crash drills only) holds each step open before its commit, so
    that a drill can kill the server mid-step."""
    steps = MIGRATIONS if migrations is None else migrations
    current = steps[-1].version if steps else UNSTAMPED_VERSION
    version = stored_version(conn)
    if version is None:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(SCHEMA)
        _set_version(conn, current)
        conn.execute("COMMIT")
        return current
    if version > current:
        raise StoreTooNew(
            f"the event store is of version {version}, newer than this mixhouse knows ({current}): "
            "run the version that wrote it, or restore a backup made before the upgrade"
        )
    pending = [m for m in steps if m.version > version]
    # Tables added since the store was written (CREATE ... IF NOT EXISTS leaves existing ones alone).
    conn.execute(SCHEMA)
    for step in pending:
        log.warning("upgrading the event store to version %d: %s", step.version, step.description)
        started = time.monotonic()
        conn.execute("BEGIN TRANSACTION")
        try:
            step.apply(conn)
            _set_version(conn, step.version)
            if drill_pause_seconds > 0:
                time.sleep(drill_pause_seconds)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.warning("the event store is at version %d (%.1f s)", step.version, time.monotonic() - started)
    return current
