"""Copy a data folder's SQLite catalog into an empty PostgreSQL catalog: every table, every row, ids
kept, in one PostgreSQL transaction (a failure leaves the target as it was). The SQLite file is only read
(after the catalog's own migrations bring it to the current shape)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixhouse.catalog import CATALOG_FILE, Catalog
from mixhouse.errors import BadRequest


def _stores() -> list[Callable[[Catalog], object]]:
    """Every store with tables in the catalog database (each creates its tables when made)."""
    from mixhouse.annotations.store import AnnotationStore
    from mixhouse.domain.saved.bookmarks import BookmarkStore
    from mixhouse.domain.saved.cohorts import CohortStore
    from mixhouse.domain.saved.funnels import FunnelStore
    from mixhouse.flags.store import FlagStore
    from mixhouse.gdpr.tokens import GdprTokens
    from mixhouse.imports.store import ImportStore
    from mixhouse.jobs.store import JobStore
    from mixhouse.lexicon.store import SchemaStore
    from mixhouse.lookup.store import LookupStore
    from mixhouse.pipelines.store import PipelineStore
    from mixhouse.web.accounts import Accounts
    from mixhouse.web.dashboards import DashboardStore

    return [
        AnnotationStore,
        BookmarkStore,
        CohortStore,
        FunnelStore,
        FlagStore,
        GdprTokens,
        ImportStore,
        JobStore,
        SchemaStore,
        LookupStore,
        PipelineStore,
        Accounts,
        DashboardStore,
    ]


def _tables_in_order(src: sqlite3.Connection) -> list[str]:
    """The source's tables, each after the tables it references (foreign keys)."""
    names = [
        str(r[0])
        for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    refs = {n: {str(r[2]) for r in src.execute(f"PRAGMA foreign_key_list({n})")} - {n} for n in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = sorted(n for n in names if n not in ordered and refs[n] <= set(ordered) | (refs[n] - set(names)))
        if not ready:  # a cycle: the rest as they come (none today)
            ready = [n for n in names if n not in ordered]
        ordered.extend(ready)
    return ordered


def copy_catalog(data_dir: Path, url: str) -> dict[str, int]:
    """Rows copied per table. Refuses a target that holds any project already."""
    if not (data_dir / CATALOG_FILE).is_file():
        raise BadRequest(f"no catalog at {data_dir / CATALOG_FILE}")
    Catalog(data_dir)  # brings an older file to the current shape
    target = Catalog(data_dir, url=url)
    try:
        if target.projects():
            raise BadRequest(f"the catalog at {target.database.where} holds projects already: copy into an empty one")
        for make in _stores():
            make(target)  # every store's tables, in the target's dialect
        conn = target.connection()
        src = sqlite3.connect(f"file:{data_dir / CATALOG_FILE}?mode=ro", uri=True, timeout=30)
        counts: dict[str, int] = {}
        try:
            src.execute("BEGIN")  # one snapshot of the source
            with conn.write():
                conn.execute("DELETE FROM organizations")  # the target's default one comes from the source
                for table in _tables_in_order(src):
                    wanted = conn.columns(table) - {"rowid"}
                    if not wanted:
                        continue  # a table no store knows any more
                    columns = [str(r[1]) for r in src.execute(f"PRAGMA table_info({table})") if str(r[1]) in wanted]
                    quoted = ", ".join(f'"{c}"' for c in columns)
                    rows: list[Any] = src.execute(f"SELECT {quoted} FROM {table} ORDER BY rowid").fetchall()
                    marks = ", ".join("?" for _ in columns)
                    conn.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", rows)
                    counts[table] = len(rows)
                    if "id" in columns and rows:  # identity columns go on after the highest id copied
                        (sequence,) = conn.execute(
                            "SELECT pg_get_serial_sequence(CAST(? AS TEXT), 'id')", (table,)
                        ).fetchone()
                        if sequence is not None:
                            conn.execute(
                                f"SELECT setval(CAST(? AS REGCLASS), (SELECT MAX(id) FROM {table}))", (sequence,)
                            )
        finally:
            src.close()
        return counts
    finally:
        target.close()
