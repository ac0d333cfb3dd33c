"""A consistent copy of the event store while it is written: DuckDB's COPY FROM DATABASE into a new file,
in one read transaction, so the copy holds exactly the commits made before it started (MVCC) while the
writer goes on committing beside it."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb

EVENT_TABLES = ("events", "profiles", "group_profiles")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def copy_database(conn: duckdb.DuckDBPyConnection, target: Path) -> dict[str, int]:
    """Copy the database of `conn` into the new file `target`; returns the row counts of the copy's main
    tables (what a restore checks)."""
    source = conn.execute("SELECT current_database()").fetchall()[0][0]
    alias = f"mixhouse_backup_{uuid.uuid4().hex}"
    conn.execute(f"ATTACH {_literal(str(target))} AS {alias}")
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(f'COPY FROM DATABASE "{source}" TO {alias}')
            counts = {t: int(conn.execute(f"SELECT count(*) FROM {alias}.{t}").fetchall()[0][0]) for t in EVENT_TABLES}
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"DETACH {alias}")  # checkpoints the copy: one file, no WAL
    return counts


def copy_file(source: Path, target: Path) -> dict[str, int]:
    """The copy of a store no server has open (read-only: the store is left as it is, even unupgraded)."""
    conn = duckdb.connect(":memory:")
    try:
        conn.execute(f"ATTACH {_literal(str(source))} AS mixhouse_source (READ_ONLY)")
        conn.execute("USE mixhouse_source")
        return copy_database(conn, target)
    finally:
        conn.close()


def table_counts(path: Path) -> dict[str, int]:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in EVENT_TABLES}
    finally:
        conn.close()
