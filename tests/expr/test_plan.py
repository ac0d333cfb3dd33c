"""What the domain asks an EventExpr without an engine: behaviour references as their own source, the
sources a record lacks refused with a caret, and the id read found in the tree, not in compiled text."""

from __future__ import annotations

import dataclasses
import json

import duckdb
import pytest

from mixhouse.engine.duckdb.expressions import Scope, compile_filter
from mixhouse.expr import ExpressionScopeError, ExpressionSyntaxError, evaluate, passes
from mixhouse.expr.plan import EventExpr, reads_distinct_id

BEHAVIOR_SCOPE = dataclasses.replace(Scope.profiles("p"), behaviors_sql="p.behaviors")


def test_behaviors_parse_only_when_allowed() -> None:
    with pytest.raises(ExpressionSyntaxError, match="unknown identifier 'behaviors'"):
        EventExpr.parse('behaviors["b"] > 1')
    expr = EventExpr.parse('behaviors["b"] > 1 and user["k"] == 2', behaviors=True)
    assert expr.behaviors() == frozenset({"b"})
    assert expr.reads("user") and expr.reads("behaviors")


@pytest.mark.parametrize(
    ("text", "counts", "expected"),
    [
        ('behaviors["b"] >= 2', {"b": 2}, True),
        ('behaviors["b"] == 0', {"b": 0}, True),
        ('behaviors["b"] == 0', {}, False),  # a behaviour not named is undefined, not 0
        ('not defined(behaviors["x"])', {"b": 1}, True),
        ('behaviors["$distinct_id"] == "u1"', {"b": 1}, False),  # no name is special among behaviours
        ('behaviors["$time"] == 3', {"$time": 3}, True),
        ('behaviors["b"] == 1 and properties["b"] == 5', {"b": 1}, True),
    ],
)
def test_behaviors_read_the_counts_alike_in_the_interpreter_and_duckdb(
    text: str, counts: dict[str, int], expected: bool
) -> None:
    expr = EventExpr.parse(text, behaviors=True)
    record = {"distinct_id": "u1", "properties": {"b": 5}, "behaviors": counts}
    assert passes(expr.tree, record) is expected
    sql = compile_filter(expr, BEHAVIOR_SCOPE)
    conn = duckdb.connect()
    row = conn.execute(
        f"SELECT {sql} FROM (SELECT 'u1' AS distinct_id, ?::JSON AS properties, ?::JSON AS behaviors) p",
        [json.dumps({"b": 5}), json.dumps(counts)],
    ).fetchall()
    assert row == [(expected,)]


def test_an_engine_refuses_behaviors_where_there_are_none() -> None:
    expr = EventExpr.parse('user["k"] == 1 or behaviors["b"] > 1', behaviors=True)
    with pytest.raises(ExpressionScopeError) as refused:
        compile_filter(expr, Scope.profiles("p"))
    assert refused.value.column - 1 == expr.text.index("behaviors")


def test_without_points_at_the_first_read_of_a_missing_source() -> None:
    text = 'properties["a"] == 1 or (user["b"] == 2 and user["c"] == 3)'
    expr = EventExpr.parse(text)
    assert expr.without("event") is expr
    with pytest.raises(ExpressionScopeError, match=r"user\[\.\.\.\] is not available") as refused:
        expr.without("user")
    assert refused.value.column - 1 == text.index("user")


def test_reads_distinct_id_walks_the_tree() -> None:
    assert reads_distinct_id(None, EventExpr.parse('properties["$distinct_id"] == "a"'))
    assert not reads_distinct_id(EventExpr.parse('properties["x"] == "distinct_id"'))  # a string is no read
    assert not reads_distinct_id(EventExpr.parse('behaviors["distinct_id"] > 1', behaviors=True))
    assert evaluate(EventExpr.parse('event["$distinct_id"]').tree, {"distinct_id": "d"}) == "d"
