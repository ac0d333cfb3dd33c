"""The ClickHouse printer on chDB against the same golden cases as the DuckDB printer (fixtures/*.jsonl):
the filter, the segment keys and the number it compiles must agree with the reference interpreter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mixhouse.engine.clickhouse.driver import ChDBDriver
from mixhouse.engine.clickhouse.expressions import Scope, compile_filter, compile_number, compile_segment_key
from mixhouse.engine.clickhouse.printer import quote
from mixhouse.expr import ExpressionError, parse
from tests.expr.conftest import Outcome, expected
from tests.expr.test_golden import DEFAULT_EVENT, DEFAULT_USER, _cases


@pytest.fixture(scope="module")
def chdb_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChDBDriver]:
    driver = ChDBDriver(tmp_path_factory.mktemp("chdb"))
    yield driver
    driver.close()


def _run(driver: ChDBDriver, expr: Any, scope: Scope, record: dict[str, Any], user: dict[str, Any] | None) -> Outcome:
    props = quote(json.dumps(record.get("properties", {})))
    user_props = quote(json.dumps(user)) if user is not None else "''"
    row = (
        f"SELECT {props} AS properties, toInt64({int(record.get('time_ms', 0))}) AS time_ms,"
        f" {quote(str(record.get('distinct_id', 'd0')))} AS distinct_id"
    )
    sql = (
        f"SELECT toUInt8({compile_filter(expr, scope)}) AS f, {compile_segment_key(expr, scope)} AS k,"
        f" {compile_number(expr, scope)} AS n FROM ({row}) AS e CROSS JOIN (SELECT {user_props} AS properties) AS u"
    )
    [got] = driver.arrow(sql).to_pylist()
    n = got["n"]
    return Outcome(bool(got["f"]), sorted(got["k"]), None if n is None else float(n))


def _profile_run(driver: ChDBDriver, expr: Any, scope: Scope, profile: dict[str, Any]) -> Outcome:
    row = f"SELECT {quote(json.dumps(profile['properties']))} AS properties, {quote(profile['distinct_id'])} AS distinct_id"
    sql = (
        f"SELECT toUInt8({compile_filter(expr, scope)}) AS f, {compile_segment_key(expr, scope)} AS k,"
        f" {compile_number(expr, scope)} AS n FROM ({row}) AS p"
    )
    [got] = driver.arrow(sql).to_pylist()
    n = got["n"]
    return Outcome(bool(got["f"]), sorted(got["k"]), None if n is None else float(n))


@pytest.mark.parametrize("case", _cases())
def test_golden_on_clickhouse(case: dict[str, Any], chdb_driver: ChDBDriver) -> None:
    text = case["expr"]
    tz = case.get("tz", "UTC")
    profile = case.get("profile")
    scope = (
        Scope.profiles("p", timezone=tz)
        if profile
        else Scope.events("e", user_properties_sql="u.properties", timezone=tz)
    )
    if case.get("no_user_scope"):
        scope = Scope.events("e", timezone=tz)
    if "error" in case:
        with pytest.raises(ExpressionError) as info:
            compile_filter(parse(text), scope)
        assert case["error"] in info.value.message
        return
    expr = parse(text)
    if profile:
        oracle = expected(expr, profile, profile["properties"], tz)
        outcome = _profile_run(chdb_driver, expr, scope, profile)
    else:
        record = case.get("event", DEFAULT_EVENT)
        user = case.get("user", DEFAULT_USER)
        oracle = expected(expr, record, user, tz)
        outcome = _run(chdb_driver, expr, scope, record, user)
    assert outcome == oracle
