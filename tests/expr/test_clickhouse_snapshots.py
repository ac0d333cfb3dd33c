"""Snapshots of the SQL the ClickHouse printer writes for typical expressions (tests/expr/snapshots/
clickhouse.json). Its semantics are checked on chDB by test_clickhouse_golden.py; this catches unintended
changes to the text (size, shape) a query carries. After an intended change, regenerate with
`MIXHOUSE_UPDATE_SNAPSHOTS=1 pytest tests/expr/test_clickhouse_snapshots.py` and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mixhouse.engine.clickhouse.expressions import Scope, compile_filter, compile_number, compile_segment_key
from mixhouse.expr import EventExpr

SNAPSHOTS = Path(__file__).parent / "snapshots" / "clickhouse.json"
SCOPE = Scope.events("e", user_properties_sql="u.properties")
CASES = {
    "filter: equality": ("filter", 'properties["plan"] == "Premium"', "UTC"),
    "filter: and/or/not": ("filter", 'properties["a"] > 1 and not (properties["b"] or user["c"] == true)', "UTC"),
    "filter: in list property": ("filter", '"x" in properties["tags"]', "UTC"),
    "filter: in literal": ("filter", 'properties["n"] in [1, 2, "three"]', "UTC"),
    "filter: defined": ("filter", 'defined(properties["$os"])', "UTC"),
    "filter: date in a zone": ("filter", 'properties["$time"] > datetime("2024-01-02")', "Europe/Berlin"),
    "filter: the resolved id": ("filter", 'properties["$distinct_id"] == "alice"', "UTC"),
    "key: bare property": ("key", 'properties["browser"]', "UTC"),
    "key: string of a number": ("key", 'string(properties["n"] * 2)', "UTC"),
    "number: arithmetic": ("number", 'number(properties["price"]) / properties["qty"]', "UTC"),
}


def _print(form: str, text: str, timezone: str) -> str:
    expr = EventExpr.parse(text, timezone=timezone)
    compile_ = {"filter": compile_filter, "key": compile_segment_key, "number": compile_number}[form]
    return compile_(expr, SCOPE)


def test_printed_sql_matches_the_snapshots() -> None:
    printed = {name: _print(*case) for name, case in CASES.items()}
    if os.environ.get("MIXHOUSE_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.write_text(json.dumps(printed, indent=1, ensure_ascii=False) + "\n")
    stored = json.loads(SNAPSHOTS.read_text())
    for name, sql in printed.items():
        assert sql == stored[name], f"{name}: the printed SQL changed"
    assert set(stored) == set(printed)


@pytest.mark.parametrize("text", ['properties["x"] == "it\'s \\\\ here"', 'properties["o\'k"] == 1'])
def test_user_text_is_quoted(text: str) -> None:
    sql = _print("filter", text, "UTC")
    assert "'o\\'k'" in sql or "'it\\'s \\\\ here'" in sql
