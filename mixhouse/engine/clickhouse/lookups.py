"""Lookup tables in ClickHouse queries (docs/lookup-tables.md): each table version a query reads is loaded
once into a ClickHouse table with the `Join` engine (`ANY LEFT`, keyed by the row id), and the printer
reads a cell with `joinGetOrNull(table, 'v', row id)`: an expression, so it works anywhere an expression
does (inside the printer's lambdas too) and no join is added to any query. A version is loaded under a
temporary name of its own (several API processes may load the same version at once) and renamed once
complete, so a crash midway never leaves a partial table under its name; a process that finds the version
already loaded (by another process) uses it.

On a cluster a `Join` table lives on one node (it is not replicated), and a query reads it on every node
that evaluates the expression. So the rows go first into a replicated table on every node, and each node
builds its own `Join` table from its replica, all `ON CLUSTER` (`load_statements`).

    with lookup_database(db):       # the printer's lookup reads name tables in this database
        sql = compile_filter(...)
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mixhouse.engine.clickhouse.driver import DriverError
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


def load_statements(db: str, name: str, attempt: str, cluster: str | None) -> tuple[list[str], str, list[str]]:
    """How one version is loaded as table `name`: (statements before the rows, the table the rows are
    inserted into, statements after). `attempt` names this load's temporary tables."""
    loading = f"{name}_loading_{attempt}"
    if not cluster:
        create = f"CREATE TABLE {db}.{loading} (k String, v String) ENGINE = Join(ANY, LEFT, k)"
        return [create], loading, [f"RENAME TABLE {db}.{loading} TO {db}.{name}"]
    rows = f"{name}_rows_{attempt}"
    on = f"ON CLUSTER {cluster}"
    before = [
        f"CREATE TABLE {db}.{rows} {on} (k String, v String)"
        f" ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{db}/{rows}', '{{replica}}') ORDER BY k"
    ]
    after = [
        f"SYSTEM SYNC REPLICA {on} {db}.{rows}",  # every replica has the rows before building from them
        f"CREATE TABLE {db}.{loading} {on} ENGINE = Join(ANY, LEFT, k) AS SELECT k, v FROM {db}.{rows}",
        f"RENAME TABLE {db}.{loading} TO {db}.{name} {on}",
        f"DROP TABLE IF EXISTS {db}.{rows} {on} SYNC",
    ]
    return before, rows, after


def drop_statement(db: str, name: str, cluster: str | None) -> str:
    return f"DROP TABLE IF EXISTS {db}.{name}" + (f" ON CLUSTER {cluster}" if cluster else "")


class LookupTables:
    """The versions loaded in ClickHouse, one per table (a newer version replaces the older)."""

    def __init__(self, store: Store, source: LookupSource | None, cluster: str | None = None) -> None:
        self.store = store
        self.source = source
        self.cluster = cluster or None
        self._lock = threading.Lock()
        self._loaded: dict[str, str] = {}  # table id -> version loaded
        self._names: set[str] = self._existing()

    def _existing(self, name: str | None = None) -> set[str]:
        """The lookup tables of the database (or whether `name` is one of them)."""
        sql = "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})"
        params = {"db": self.store.db, "p": _PREFIX}
        if name is not None:
            sql += " AND name = {n:String}"
            params["n"] = name
        return {str(r["name"]) for r in self.store.rows(sql, params)}

    def missing(self, refs: set[ast.LookupRef]) -> set[ast.LookupRef]:
        return {r for r in refs if self._loaded.get(r.table_id) != r.version}

    def load(self, ref: ast.LookupRef) -> bool:
        """Load this version (False: the table moved on meanwhile; bind again)."""
        assert self.source is not None
        with self._lock:
            if self._loaded.get(ref.table_id) == ref.version:
                return True
            name = _name(ref)
            # Complete when present (renamed): loaded by an earlier run of this process, or by another process.
            if name not in self._names and not self._existing(name):
                rows = self.source.rows(ref)
                if rows is None:
                    return False
                self._create(name, rows.column("k").to_pylist(), rows.column("v").to_pylist())
            self._names.add(name)
            old = self._loaded.get(ref.table_id)
            if old is not None:
                stale = _name(ast.LookupRef(ref.table_id, old))
                self.store.driver.command(drop_statement(self.store.db, stale, self.cluster))
                self._names.discard(stale)
            self._loaded[ref.table_id] = ref.version
            return True

    def _create(self, name: str, keys: list[str], cells: list[str]) -> None:
        db, attempt = self.store.db, uuid.uuid4().hex[:12]
        before, target, after = load_statements(db, name, attempt, self.cluster)
        try:
            for sql in before:
                self.store.driver.command(sql)
            self.store.insert(target, ("k", "v"), zip(keys, cells, strict=True), token=False)
            for sql in after:
                self.store.driver.command(sql)
        except DriverError:
            if not self._existing(name):
                raise
            # Another process loaded the same version first: use its table, drop this load's.
            for leftover in (f"{name}_loading_{attempt}", f"{name}_rows_{attempt}"):
                self.store.driver.command(drop_statement(db, leftover, self.cluster))
