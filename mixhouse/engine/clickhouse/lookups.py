"""Lookup tables in ClickHouse queries (docs/lookup-tables.md): each table version a query reads is loaded
once into a ClickHouse table with the `Join` engine (`ANY LEFT`, keyed by the row id), and the printer
reads a cell with `joinGetOrNull(table, 'v', row id)`: an expression, so it works anywhere an expression
does (inside the printer's lambdas too) and no join is added to any query. A version is loaded under a
temporary name and renamed once complete, so a crash midway never leaves a partial table under its name.

    with lookup_database(db):       # the printer's lookup reads name tables in this database
        sql = compile_filter(...)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mixhouse.engine.clickhouse.store import Store
from mixhouse.expr import ast
from mixhouse.lookup.binding import LookupSource

_DATABASE: ContextVar[str | None] = ContextVar("mixhouse_clickhouse_lookup_database", default=None)
_PREFIX = "lookup_"


@contextmanager
def lookup_database(db: str) -> Iterator[None]:
    token = _DATABASE.set(db)
    try:
        yield
    finally:
        _DATABASE.reset(token)


def _name(ref: ast.LookupRef) -> str:
    return _PREFIX + re.sub(r"[^0-9A-Za-z]", "_", f"{ref.table_id}_{ref.version}")


def table_name(ref: ast.LookupRef) -> str | None:
    """The loaded table of this version as `db.name` (None outside a query that reads lookup tables)."""
    db = _DATABASE.get()
    return None if db is None else f"{db}.{_name(ref)}"


class LookupTables:
    """The versions loaded in ClickHouse, one per table (a newer version replaces the older)."""

    def __init__(self, store: Store, source: LookupSource | None) -> None:
        self.store = store
        self.source = source
        self._lock = threading.Lock()
        self._loaded: dict[str, str] = {}  # table id -> version loaded
        self._names: set[str] = {
            str(r["name"])
            for r in store.rows(
                "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})",
                {"db": store.db, "p": _PREFIX},
            )
        }

    def missing(self, refs: set[ast.LookupRef]) -> set[ast.LookupRef]:
        return {r for r in refs if self._loaded.get(r.table_id) != r.version}

    def load(self, ref: ast.LookupRef) -> bool:
        """Load this version (False: the table moved on meanwhile; bind again)."""
        assert self.source is not None
        with self._lock:
            if self._loaded.get(ref.table_id) == ref.version:
                return True
            name = _name(ref)
            if name not in self._names:  # loaded by an earlier run of this process: complete (renamed)
                rows = self.source.rows(ref)
                if rows is None:
                    return False
                self._create(name, rows.column("k").to_pylist(), rows.column("v").to_pylist())
            old = self._loaded.get(ref.table_id)
            if old is not None:
                stale = _name(ast.LookupRef(ref.table_id, old))
                self.store.driver.command(f"DROP TABLE IF EXISTS {self.store.db}.{stale}")
                self._names.discard(stale)
            self._loaded[ref.table_id] = ref.version
            return True

    def _create(self, name: str, keys: list[str], cells: list[str]) -> None:
        db, loading = self.store.db, f"{name}_loading"
        self.store.driver.command(f"DROP TABLE IF EXISTS {db}.{loading}")
        self.store.driver.command(f"CREATE TABLE {db}.{loading} (k String, v String) ENGINE = Join(ANY, LEFT, k)")
        self.store.insert(loading, ("k", "v"), zip(keys, cells, strict=True), token=False)
        self.store.driver.command(f"RENAME TABLE {db}.{loading} TO {db}.{name}")
        self._names.add(name)
