"""Lookup tables in DuckDB: each table version a query reads is loaded once into an in-memory database
attached to the engine's (`mh_lookups`, shared by every connection), and a query joins it by the row id
(a LEFT JOIN per lookup read, `ON row id = the property's value as text`), so no event meets Python.

Why a join and not a subquery in the printed expression: DuckDB refuses subqueries inside lambdas (the
printer binds a property read twice through one), and where it accepts them a correlated scalar
subquery cost 3-10x the join (2M events, 1,000 and 100,000 rows: 2.97 s and 5.84 s against 0.55 s and
0.28 s; a constant MAP 3.6 s and 58.7 s), measured on a shared 2-core machine.

    joins = lookup_joins(scope, where, on)      # after the FROM of the relation the scope names
"""

from __future__ import annotations

import hashlib
import re
import threading

import duckdb

from mixhouse.engine.duckdb.scope import Scope
from mixhouse.expr import ast
from mixhouse.expr.plan import EventExpr
from mixhouse.lookup.binding import LookupSource

SCHEMA = "mh_lookups"
# Column names no query of the engine uses unqualified (a join adds them to the FROM's columns).
KEY, ROW = "mh_lookup_key", "mh_lookup_row"


def table_name(ref: ast.LookupRef) -> str:
    safe = re.sub(r"[^0-9A-Za-z]", "_", f"{ref.table_id}_{ref.version}")
    return f'{SCHEMA}."t_{safe}"'


def source_sql(scope: Scope, node: ast.Lookup) -> str | None:
    """The JSON the base property is read from (None: the scope has no profile for `user[...]`)."""
    return scope.user_properties_sql if node.base.source == "user" else scope.properties_sql


def alias(scope: Scope, node: ast.Lookup) -> str:
    """The join's alias for this read: the same base property through the same table version shares one."""
    assert node.table is not None
    ident = "\x1f".join((str(source_sql(scope, node)), node.base.name, node.table.table_id, node.table.version))
    return "mh_lk_" + hashlib.sha1(ident.encode()).hexdigest()[:12]


def key_sql(json_sql: str) -> str:
    """The row id a JSON value matches (interpreter.lookup_key): a string as is, a number in its key form,
    true/false; a list, object, null or no value matches nothing (NULL)."""
    from mixhouse.engine.duckdb.printer import _render_number, _unquote

    t = "CAST(mh_lk_j AS VARCHAR)"
    case = (
        f"CASE WHEN starts_with({t}, '\"') THEN {_unquote('mh_lk_j')} "
        f"WHEN {t} IN ('true', 'false') THEN {t} "
        f"WHEN starts_with({t}, '[') OR starts_with({t}, '{{') OR {t} = 'null' THEN NULL "
        f"ELSE {_render_number(f'TRY_CAST({t} AS DOUBLE)')} END"
    )
    return f"list_transform([{json_sql}], lambda mh_lk_j: {case})[1]"


def lookup_joins(scope: Scope, *exprs: EventExpr | None) -> str:
    """The LEFT JOINs the expressions' bound lookup reads need, to follow the FROM that defines the
    scope's aliases (a row id matches at most one row: the join never repeats an event)."""
    from mixhouse.engine.duckdb.printer import quote

    joins: dict[str, str] = {}
    for expr in exprs:
        if expr is None:
            continue
        for node in expr.lookups():
            src = source_sql(scope, node)
            if node.table is None or src is None or not scope.lookups:
                continue  # the printer refuses it, with its caret
            name = alias(scope, node)
            pointer = "/" + node.base.name.replace("~", "~0").replace("/", "~1")
            key = key_sql(f"json_extract({src}, {quote(pointer)})")
            joins[name] = f"LEFT JOIN {table_name(node.table)} {name} ON {name}.{KEY} = {key}"
    return " ".join(joins.values())


class LookupTables:
    """The table versions loaded into `mh_lookups`, one per table (a newer version replaces the older)."""

    def __init__(self, source: LookupSource | None) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._loaded: dict[str, str] = {}  # table id -> version loaded

    def attach(self, db: duckdb.DuckDBPyConnection) -> None:
        """On every (re)open: a fresh in-memory database, nothing loaded."""
        db.execute(f"ATTACH ':memory:' AS {SCHEMA}")
        with self._lock:
            self._loaded.clear()

    def missing(self, refs: set[ast.LookupRef]) -> set[ast.LookupRef]:
        return {r for r in refs if self._loaded.get(r.table_id) != r.version}

    def load(self, db: duckdb.DuckDBPyConnection, ref: ast.LookupRef) -> bool:
        """Load this version (False: the table moved on meanwhile; bind again)."""
        assert self.source is not None
        with self._lock:
            if self._loaded.get(ref.table_id) == ref.version:
                return True
            rows = self.source.rows(ref)
            if rows is None:
                return False
            conn = db.cursor()
            try:
                conn.register("mh_lookup_rows", rows)
                conn.execute(
                    f"CREATE OR REPLACE TABLE {table_name(ref)} AS"
                    f" SELECT k AS {KEY}, CAST(v AS JSON) AS {ROW} FROM mh_lookup_rows"
                )
                conn.unregister("mh_lookup_rows")
                old = self._loaded.get(ref.table_id)
                if old is not None:
                    # A query still running on the old version keeps its snapshot (DuckDB's catalog is
                    # transactional), so dropping it now is safe.
                    conn.execute(f"DROP TABLE IF EXISTS {table_name(ast.LookupRef(ref.table_id, old))}")
            finally:
                conn.close()
            self._loaded[ref.table_id] = ref.version
            return True
