"""Fuzzing the expression language (`mixhouse.expr`) end to end: any text is parsed, compiled and the
SQL run on DuckDB over hostile rows. The only failure allowed is an ExpressionError (a 400 with a caret);
DuckDB must never reject the SQL we built (that would be a 500, or an injection)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_number, compile_segment_key
from mixhouse.expr import ExpressionError, parse
from tests.fuzzing import CASES, SERVER_ERRORS, examples, report

SUITE = "expressions"
FUZZ = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    'properties["plan"]',
    'properties["amount"]',
    'properties["tags"]',
    'properties["time"]',
    'properties["$distinct_id"]',
    'properties["it\'s"]',
    'properties["a\\"b"]',
    'user["plan"]',
    'event["$time"]',
    '"Premium"',
    "'single'",
    '"x\' OR 1=1 --"',
    '"; DROP TABLE events; --"',
    '"\\u0000"',
    "1",
    "2.5",
    ".5",
    "1e3",
    "-3",
    "9999999999999999999999",
    "true",
    "false",
    "null",
    "undefined",
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "and",
    "or",
    "not",
    "in",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    ",",
    "defined(",
    "not defined(",
    'datetime("2024-01-01")',
    'datetime("2024-01-01T10:00:00")',
    "datetime(",
    "string(",
    "number(",
    "boolean(",
    "list(",
    "has_prefix(",
]
token_text = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map(" ".join)
any_text = st.text(max_size=60)
comparisons = st.builds(
    lambda left, op, right, join, more: f"{left} {op} {right}" + (f" {join} {more}" if more else ""),
    st.sampled_from(TOKENS[:9]),
    st.sampled_from(["==", "!=", ">", "<", ">=", "<=", "in"]),
    st.sampled_from(TOKENS[9:24]),
    st.sampled_from(["and", "or"]),
    st.none() | st.sampled_from(['defined(properties["plan"])', 'not "a" in properties["tags"]', "true"]),
)

ROWS = [
    ('{"plan": "Premium", "amount": 50, "tags": ["a", "b"], "it\'s": 1}', 1_700_000_000_000, "u1"),
    ('{"plan": 3, "amount": "fifty", "tags": "a", "a\\"b": null}', 0, ""),
    ('{"plan": null, "amount": 1e308, "tags": [1, [2], {"x": 1}]}', -1, "x' OR 1=1 --"),
    ('{"plan": {"nested": true}, "amount": -0.0, "tags": []}', 253_402_300_799_000, "\u0000"),
    ("{}", 1, "u5"),
]


@pytest.fixture(scope="module")
def db(request: pytest.FixtureRequest) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect()
    conn.execute("CREATE TABLE ev (properties JSON, time_ms BIGINT, distinct_id VARCHAR)")
    conn.executemany("INSERT INTO ev VALUES (?, ?, ?)", ROWS)
    conn.execute("CREATE TABLE prof (properties JSON)")
    conn.execute("""INSERT INTO prof VALUES ('{"plan": "Premium"}'), ('{"plan": [1,2]}'), (NULL)""")
    yield conn
    conn.close()
    report(request.config, SUITE)


def _check(db: duckdb.DuckDBPyConnection, text: str) -> None:
    CASES[SUITE] += 1
    try:
        tree = parse(text)
    except ExpressionError:
        return
    scope = Scope.events("e", user_properties_sql="u.properties", timezone="America/New_York")
    statements = []
    for compile_one, template in (
        (compile_filter, "SELECT count(*) FROM ev e, prof u WHERE {sql}"),
        (compile_segment_key, "SELECT count(k) FROM ev e, prof u, unnest({sql}) AS t(k)"),
        (compile_number, "SELECT sum({sql}) FROM ev e, prof u"),
    ):
        try:
            statements.append(template.format(sql=compile_one(tree, scope)))
        except ExpressionError:
            continue
    for sql in statements:
        try:
            db.execute(sql).fetchall()
        except duckdb.Error as exc:
            SERVER_ERRORS[SUITE] += 1
            raise AssertionError(f"DuckDB refused the SQL compiled from {text!r}: {exc}") from exc


@FUZZ
@given(token_text)
def test_token_soup_compiles_and_runs_or_is_refused_with_an_expression_error(
    db: duckdb.DuckDBPyConnection, text: str
) -> None:
    _check(db, text)


@FUZZ
@given(comparisons)
def test_well_formed_comparisons_run_on_hostile_rows(db: duckdb.DuckDBPyConnection, text: str) -> None:
    _check(db, text)


@FUZZ
@given(any_text)
def test_arbitrary_text_never_raises_anything_else(db: duckdb.DuckDBPyConnection, text: str) -> None:
    _check(db, text)
