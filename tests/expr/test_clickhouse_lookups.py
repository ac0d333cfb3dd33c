"""Lookup reads on the ClickHouse printer (chDB): the same cases as the DuckDB printer (test_lookups.py),
against the reference interpreter over the same events, with the table version loaded by the ClickHouse
engine's LookupTables (a Join-engine table read with joinGetOrNull)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from mixhouse.engine.clickhouse.driver import ChDBDriver
from mixhouse.engine.clickhouse.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.engine.clickhouse.lookups import LookupTables, lookup_database
from mixhouse.engine.clickhouse.store import Store
from mixhouse.expr import ExpressionScopeError
from mixhouse.expr.interpreter import passes, segment_keys
from mixhouse.expr.plan import EventExpr
from mixhouse.lookup.binding import resolver
from mixhouse.lookup.resolve import LookupResolver
from tests.expr.test_lookups import EVENTS, FILTERS, KEYS, PROJECT
from tests.expr.test_lookups import setup as duckdb_setup  # noqa: F401  (the catalog, table and rows)


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    driver = ChDBDriver(tmp_path_factory.mktemp("chdb-lookups"), "mh")
    store = Store(driver)
    driver.command(
        "CREATE TABLE mh.e0 (id Int64, properties String, time_ms Int64, distinct_id String) ENGINE = Memory"
    )
    store.insert("e0", ("id", "properties", "time_ms", "distinct_id"),
                 [(i, orjson.dumps(p).decode(), 0, "d") for i, p in enumerate(EVENTS)], token=False)  # fmt: skip
    yield store
    driver.close()


def _bind(text: str, source: LookupResolver, tables: LookupTables) -> EventExpr:
    expr = EventExpr.parse(text).bind_lookups(resolver(PROJECT, source))
    for node in expr.lookups():
        assert node.table is not None and tables.load(node.table)
    return expr


@pytest.mark.parametrize(("text", "rule"), FILTERS, ids=[r for _, r in FILTERS])
def test_filters_agree(duckdb_setup: tuple[Any, ...], chdb: Store, text: str, rule: str) -> None:  # noqa: F811
    _, _, source, rows = duckdb_setup
    expr = _bind(text, source, LookupTables(chdb, source))
    with lookup_database(chdb.db):
        sql = f"SELECT e.id AS id, {compile_filter(expr, Scope.events('e'))} AS ok FROM mh.e0 AS e ORDER BY e.id"
    got = [bool(r["ok"]) for r in chdb.rows(sql)]
    want = [passes(expr.tree, {"properties": p, "time_ms": 0}, lookups=rows) for p in EVENTS]
    assert got == want, rule


@pytest.mark.parametrize(("text", "rule"), KEYS, ids=[r for _, r in KEYS])
def test_keys_agree(duckdb_setup: tuple[Any, ...], chdb: Store, text: str, rule: str) -> None:  # noqa: F811
    _, _, source, rows = duckdb_setup
    expr = _bind(text, source, LookupTables(chdb, source))
    with lookup_database(chdb.db):
        sql = f"SELECT e.id AS id, {compile_segment_key(expr, Scope.events('e'))} AS k FROM mh.e0 AS e ORDER BY e.id"
    got = [sorted(r["k"]) for r in chdb.rows(sql)]
    want = [sorted(segment_keys(expr.tree, {"properties": p, "time_ms": 0}, lookups=rows)) for p in EVENTS]
    assert got == want, rule


def test_an_unbound_read_or_one_outside_a_query_is_refused(duckdb_setup: tuple[Any, ...], chdb: Store) -> None:  # noqa: F811
    _, _, source, _ = duckdb_setup
    with pytest.raises(ExpressionScopeError):
        compile_filter(EventExpr.parse('properties["k"]["name"] == "Ann"'), Scope.events("e"))
    expr = _bind('properties["k"]["name"] == "Ann"', source, LookupTables(chdb, source))
    with pytest.raises(ExpressionScopeError):  # no database named: not inside an engine query
        compile_filter(expr, Scope.events("e"))
