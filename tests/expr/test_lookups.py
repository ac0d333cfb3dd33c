"""Lookup reads (`properties["p"]["column"]`) on both sides: the reference interpreter with the table's
rows in hand, and the DuckDB printer joining the same version loaded by the engine's LookupTables, over
the same events. Each case names its rule (docs/expressions.md rule 13, docs/lookup-tables.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.engine.duckdb.lookups import LookupTables, lookup_joins
from mixhouse.expr import EventExpr, ExpressionScopeError, ExpressionSyntaxError, passes, segment_keys
from mixhouse.expr.interpreter import DateTime
from mixhouse.lookup import csvtable
from mixhouse.lookup.binding import resolver
from mixhouse.lookup.resolve import LookupResolver
from mixhouse.lookup.store import LookupStore

PROJECT = 1
TABLE = (
    "id,name,score,vip,tags,born,note\n"
    'a,Ann,2.5,true,"[""x"",""y""]",2020-01-02T03:04:05Z,\n'
    "42,Answer,42,false,,1999-12-31T23:00:00+01:00,plain\n"
    '"q""uote",Quoted,1e3,TRUE,"[""x""]",,back\\slash\n'
    "true,Yes,0,false,,,\n"
    "2.5,Half,-1,false,,,\n"
)
EVENTS: list[dict[str, Any]] = [
    {"k": "a"},
    {"k": 42},
    {"k": "42"},
    {"k": 42.0},
    {"k": 'q"uote'},
    {"k": True},
    {"k": 2.5},
    {"k": "zzz"},
    {"k": None},
    {"k": ["a"]},
    {"k": {"a": 1}},
    {},
]
# (expression, rule)
FILTERS = [
    ('properties["k"]["name"] == "Ann"', "a string id matches as is"),
    ('properties["k"]["name"] == "Answer"', 'the number 42, 42.0 and the string "42" all match the row 42'),
    ('properties["k"]["name"] == "Yes"', "true matches the row `true`"),
    ('properties["k"]["name"] == "Half"', "2.5 matches the row `2.5` (key form of a number)"),
    ('properties["k"]["name"] == "Quoted"', "a quote in the id"),
    ('defined(properties["k"]["name"])', "null, a list, an object, no property or no row: undefined"),
    ('not defined(properties["k"]["note"])', "an empty cell is undefined"),
    ('properties["k"]["score"] > 2', "numbers are numbers"),
    ('properties["k"]["vip"] == true', "booleans are booleans, any case"),
    ('"x" in properties["k"]["tags"]', "a JSON array of strings is a list"),
    ('properties["k"]["born"] < datetime("2000-01-01")', "a datetime cell compares as a datetime (its offset applied)"),
    ('properties["k"]["born"] > "2019-06-01"', "a datetime meets a date string"),
    ('properties["k"]["note"] == "back\\\\slash"', "a backslash in a cell"),
    ('properties["k"]["vip"]', "a bare lookup value as the whole filter tests its truth"),
    ('properties["k"]["vip"] and properties["k"]["score"] > 0', "a bare lookup value as an operand"),
    ('properties["k"]["id"] == "42"', "the first column is the id, a string"),
]
KEYS = [
    ('properties["k"]["name"]', "on a lookup column"),
    ('properties["k"]["score"]', "numbers keyed in their shortest form"),
    ('properties["k"]["tags"]', "a list cell fans out"),
    ('properties["k"]["born"]', "a datetime keyed like $time"),
    ('properties["k"]["vip"]', "booleans keyed true/false"),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    data_dir: Path = tmp_path_factory.mktemp("expr-lookups") / "data"
    catalog = Catalog(data_dir)
    catalog.create_project(project_id=PROJECT, name="p", token="T", secret="S", api_key="K")
    store = LookupStore(catalog)
    table = store.create(PROJECT, "Things")
    store.replace(PROJECT, table.id, csvtable.parse(TABLE))
    store.set_mappings(PROJECT, table.id, {"event": ["k"], "user": []})
    source = LookupResolver(catalog)
    db = duckdb.connect()
    tables = LookupTables(source)
    tables.attach(db)
    db.execute("CREATE TABLE e0 (id INTEGER, properties JSON, time_ms BIGINT, distinct_id VARCHAR)")
    db.executemany(
        "INSERT INTO e0 VALUES (?, ?, 0, 'd')", [(i, orjson.dumps(p).decode()) for i, p in enumerate(EVENTS)]
    )

    def cell(v: Any) -> Any:
        if isinstance(v, dict) and csvtable.DATETIME_KEY in v:
            moment = datetime.fromisoformat(v[csvtable.DATETIME_KEY]).replace(tzinfo=UTC)
            return DateTime(int(moment.timestamp() * 1000))
        return v

    mapped = source.mapped(PROJECT, "event", "k")
    assert mapped is not None
    rows = {mapped.ref: {r["id"]: {c: cell(v) for c, v in r.items()} for r in store.rows(table.id)}}
    yield db, tables, source, rows
    db.close()


def _bind(text: str, source: LookupResolver, tables: LookupTables, db: duckdb.DuckDBPyConnection) -> EventExpr:
    expr = EventExpr.parse(text).bind_lookups(resolver(PROJECT, source))
    for node in expr.lookups():
        assert node.table is not None and tables.load(db, node.table)
    return expr


@pytest.mark.parametrize(("text", "rule"), FILTERS, ids=[r for _, r in FILTERS])
def test_filters_agree(setup: tuple[Any, ...], text: str, rule: str) -> None:
    db, tables, source, rows = setup
    expr = _bind(text, source, tables, db)
    scope = Scope.events("e", lookups=True)
    sql = f"SELECT e.id, {compile_filter(expr, scope)} FROM e0 e {lookup_joins(scope, expr)} ORDER BY e.id"
    got = [bool(r[1]) for r in db.execute(sql).fetchall()]
    want = [passes(expr.tree, {"properties": p, "time_ms": 0}, lookups=rows) for p in EVENTS]
    assert got == want, rule
    assert any(want), f"{rule}: the case passes no event, so it proves nothing"


@pytest.mark.parametrize(("text", "rule"), KEYS, ids=[r for _, r in KEYS])
def test_keys_agree(setup: tuple[Any, ...], text: str, rule: str) -> None:
    db, tables, source, rows = setup
    expr = _bind(text, source, tables, db)
    scope = Scope.events("e", lookups=True)
    sql = f"SELECT e.id, {compile_segment_key(expr, scope)} FROM e0 e {lookup_joins(scope, expr)} ORDER BY e.id"
    got = [sorted(r[1]) for r in db.execute(sql).fetchall()]
    want = [sorted(segment_keys(expr.tree, {"properties": p, "time_ms": 0}, lookups=rows)) for p in EVENTS]
    assert got == want, rule
    assert any(want), rule


def test_refusals(setup: tuple[Any, ...]) -> None:
    db, tables, source, _ = setup
    with pytest.raises(ExpressionScopeError, match="no lookup table is mapped to the event property"):
        _bind('properties["other"]["name"] == 1', source, tables, db)
    with pytest.raises(ExpressionScopeError, match="has no column 'nope'"):
        _bind('1 == 1 and properties["k"]["nope"] == 1', source, tables, db)
    with pytest.raises(ExpressionScopeError, match="no lookup table is mapped to the user property"):
        _bind('user["k"]["name"] == 1', source, tables, db)
    bound = _bind('properties["k"]["name"] == "Ann"', source, tables, db)
    # A query whose scope joins no lookup tables refuses the read, caret and all.
    with pytest.raises(ExpressionScopeError, match="lookup table values are not available in this query"):
        compile_filter(bound, Scope.events("e"))
    with pytest.raises(ExpressionScopeError, match="not available"):
        compile_filter(EventExpr.parse('properties["k"]["name"] == "Ann"'), Scope.events("e", lookups=True))
    with pytest.raises(ExpressionScopeError, match="not available"):
        passes(EventExpr.parse('properties["k"]["name"]').tree, {"properties": {}})
    for text, message in [
        ('event["$time"]["x"]', "only properties"),
        ('properties["a"]["b"]["c"]', "no properties of its own"),
        ('properties["a"][1]', "column must be a string literal"),
    ]:
        with pytest.raises(ExpressionSyntaxError, match=message):
            EventExpr.parse(text)


def test_a_new_version_replaces_the_loaded_one(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "data")
    catalog.create_project(project_id=PROJECT, name="p", token="T", secret="S", api_key="K")
    store = LookupStore(catalog)
    table = store.create(PROJECT, "Things")
    store.replace(PROJECT, table.id, csvtable.parse("id,name\na,Ann\n"))
    store.set_mappings(PROJECT, table.id, {"event": ["k"], "user": []})
    source = LookupResolver(catalog)
    db = duckdb.connect()
    tables = LookupTables(source)
    tables.attach(db)
    db.execute('CREATE TABLE e0 AS SELECT 1 AS id, \'{"k": "a"}\'::JSON AS properties')
    scope = Scope.events("e", lookups=True)

    def names() -> list[str]:
        expr = _bind('properties["k"]["name"]', source, tables, db)
        return [
            r[0][0]
            for r in db.execute(
                f"SELECT {compile_segment_key(expr, scope)} FROM e0 e {lookup_joins(scope, expr)}"
            ).fetchall()
        ]

    def loaded() -> int:
        return len(db.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = 'mh_lookups'").fetchall())

    assert names() == ["Ann"] and loaded() == 1
    old = source.mapped(PROJECT, "event", "k")
    store.replace(PROJECT, table.id, csvtable.parse("id,name\na,Anna\n"))
    assert names() == ["Anna"] and loaded() == 1  # the older version is dropped once the new one is in
    # A version that moved on before it could be loaded is not loaded: the caller binds again.
    assert old is not None and tables.load(db, old.ref) is False
    db.close()
