"""No input escapes its literal, no input crashes the compiler, limits are enforced cleanly."""

from __future__ import annotations

import json

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixhouse.expr
from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_number, compile_segment_key
from mixhouse.engine.duckdb.printer import quote
from mixhouse.expr import ExpressionError, ExpressionLimitError, parse
from mixhouse.expr.parser import MAX_DEPTH
from mixhouse.expr.tokens import MAX_LENGTH
from tests.expr.conftest import Runner, event_scope

# Anything but NUL (which the tokenizer refuses) and lone surrogates (which no HTTP request can carry).
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=40)
HOSTILE = st.one_of(
    TEXT, st.sampled_from(["'", "''", "\\", "\\'", "'; DROP TABLE events; --", '"', "$.a", "~1", "/", "%"])
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=HOSTILE, value=HOSTILE)
def test_literals_and_names_stay_literal(runner: Runner, name: str, value: str) -> None:
    """A property named anything, compared with any string, matches exactly its own value."""
    runner.load([{"properties": {name: value}}, {"properties": {name: value + "x"}}])
    expr = parse(
        f"properties[{json.dumps(name)}] == {json.dumps(value)} and {json.dumps(value)} in properties[{json.dumps(name)}]"
    )
    assert [o.passes for o in runner.run(expr, event_scope())] == [True, False]
    keys = runner.run(parse(f"properties[{json.dumps(name)}]"), event_scope())
    assert [o.keys for o in keys] == [[value], [value + "x"]]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE)
def test_quote_round_trips(conn: duckdb.DuckDBPyConnection, value: str) -> None:
    assert conn.execute(f"SELECT {quote(value)}").fetchone() == (value,)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(TEXT, st.text(alphabet="properties[]\"'()notandor+-*/%=!<>in 0123.e,user", max_size=60)))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        expr = parse(text)
    except ExpressionError as e:
        assert e.message and 1 <= e.column <= len(text) + 1
        assert str(e).splitlines()[-1].endswith("^")
        return
    scope = Scope.events("e", user_properties_sql="u.properties")
    for compile_ in (compile_filter, compile_segment_key, compile_number):
        assert isinstance(compile_(expr, scope), str)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000 + "1" + ")" * 10_000,
        "not " * 5_000 + "true",
        "-" * 10_000 + "1",
        "floor(" * 3000 + "1" + ")" * 3000,
        "[" * 5000,
        " + ".join(["1"] * 2000),
        "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
    ],
)
def test_deep_or_huge_is_refused_cleanly(text: str) -> None:
    with pytest.raises(ExpressionLimitError) as info:
        parse(text)
    assert "limit" in info.value.message


def test_too_long() -> None:
    text = 'properties["a"] == "' + "x" * MAX_LENGTH + '"'
    with pytest.raises(ExpressionLimitError, match="too long"):
        parse(text)


def test_long_or_chain_is_flat_and_fine(runner: Runner) -> None:
    """A few hundred alternatives is a real-world filter; `or` chains do not nest."""
    text = " or ".join(f'properties["n"] == {i}' for i in range(500))
    runner.load([{"properties": {"n": 499}}, {"properties": {"n": 500}}])
    assert [o.passes for o in runner.run(parse(text), event_scope())] == [True, False]


def test_nested_within_limit_compiles(runner: Runner) -> None:
    inner = 'number(properties["n"])'
    for _ in range(MAX_DEPTH // 4 - 2):  # each call is two levels: the call and its argument
        inner = f"number(string({inner}))"
    runner.load([{"properties": {"n": "7"}}])
    [out] = runner.run(parse(inner), event_scope())
    assert out.number == 7


def test_error_message_has_column_and_caret() -> None:
    with pytest.raises(ExpressionError) as info:
        parse('properties["a"] == "x" and properties["b"] =! 2')
    e = info.value
    assert e.column == 44
    assert e.expression == 'properties["a"] == "x" and properties["b"] =! 2'
    lines = str(e).splitlines()
    assert lines[0] == "unexpected '='; did you mean '=='? at column 44"
    assert lines[1] == e.expression
    assert lines[2] == " " * 43 + "^"


def test_public_api() -> None:
    assert sorted(mixhouse.expr.__all__) == sorted(
        [
            "UNDEFINED",
            "DateTime",
            "EventExpr",
            "Expr",
            "ExpressionError",
            "ExpressionLimitError",
            "ExpressionScopeError",
            "ExpressionSyntaxError",
            "ExpressionTypeError",
            "evaluate",
            "number_value",
            "parse",
            "passes",
            "segment_keys",
        ]
    )
    for name in mixhouse.expr.__all__:
        assert hasattr(mixhouse.expr, name)


def test_parse_is_cacheable() -> None:
    """Trees are frozen and compare by meaning (positions are ignored)."""
    assert parse('properties["a"]  ==  1') == parse('properties["a"] == 1')
    assert hash(parse('properties["a"] in [1, "x"]')) == hash(parse('properties["a"] in [1,"x"]'))


def test_compile_accepts_text_and_reports_scope_errors_with_caret() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_filter('true and user["plan"] == "x"', Scope.events("e"))
    assert info.value.column == 10
    assert "user[...]" in info.value.message
