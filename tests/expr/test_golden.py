"""Golden cases (fixtures/*.jsonl): the interpreter and the compiled SQL must both give the expected result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mixhouse.engine.duckdb.expressions import Scope, compile_filter
from mixhouse.expr import UNDEFINED, DateTime, ExpressionError, parse
from mixhouse.expr import interpreter as interp
from tests.expr.conftest import Runner, event_scope, expected

FIXTURES = Path(__file__).parent / "fixtures"
JAN1 = 1704067200000  # 2024-01-01T00:00:00Z

DEFAULT_EVENT: dict[str, Any] = {
    "time_ms": JAN1,
    "distinct_id": "u1",
    "properties": {
        "s": "hello",
        "n": 5,
        "f": 2.5,
        "neg": -7,
        "zero": 0,
        "t": True,
        "fa": False,
        "nul": None,
        "list": ["a", "b", 1, True, None],
        "empty_list": [],
        "obj": {"k": 1},
        "empty_obj": {},
        "date": "2024-01-02T03:04:05",
        "day": "2024-01-02",
        "numstr": "42",
        "e": "",
        "plan": "Premium",
        "$os": "iOS",
        "account_id": 3,
        "product_id": [1, 7],
        "source": "Facebook Ads",
        "Source": "web",
    },
}
DEFAULT_USER: dict[str, Any] = {
    "customer_id": "HUBSPOT_CUSTOMER_ID_123",
    "$last_seen": "2024-03-01T10:00:00",
    "$email": "a@example.com",
    "signup_date": "2016-04-01",
}


def _cases() -> list[Any]:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                case = json.loads(line)
                out.append(pytest.param(case, id=f"{path.stem}:{n}:{case['expr'][:60]}"))
    return out


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and v.keys() == {"undefined"}:
        return UNDEFINED
    if isinstance(v, dict) and v.keys() == {"datetime"}:
        return DateTime(v["datetime"])
    return v


def _same(got: Any, want: Any) -> bool:
    # `True == 1` in Python: compare kinds too.
    if interp.kind_of(got) is not interp.kind_of(interp.from_json(want)):
        return False
    if isinstance(got, list):
        return len(got) == len(want) and all(_same(interp.from_json(a), b) for a, b in zip(got, want, strict=True))
    return bool(got == want)


@pytest.mark.parametrize("case", _cases())
def test_golden(case: dict[str, Any], runner: Runner) -> None:
    text = case["expr"]
    tz = case.get("tz", "UTC")
    profile = case.get("profile")
    scope = Scope.profiles("p", timezone=tz) if profile else event_scope(tz)
    if case.get("no_user_scope"):
        scope = Scope.events("e", timezone=tz)

    if "error" in case:
        with pytest.raises(ExpressionError) as info:
            compile_filter(parse(text), scope)
        assert case["error"] in info.value.message
        if "column" in case:
            assert info.value.column == case["column"], str(info.value)
        assert "^" in str(info.value)
        return

    expr = parse(text)
    if profile:
        record, user = profile, profile["properties"]
    else:
        record = case.get("event", DEFAULT_EVENT)
        user = case.get("user", DEFAULT_USER)
    want = _decode(case["expect"])
    got = interp.evaluate(expr, record, user=user, timezone=tz)
    assert _same(got, want), f"interpreter gave {got!r}, expected {want!r}"

    oracle = expected(expr, record, user, tz)
    if "keys" in case:
        assert oracle.keys == sorted(case["keys"])
    if profile:
        runner.load([{"distinct_id": profile["distinct_id"], "properties": {}}], [profile["properties"]])
        [outcome] = runner.run_profiles(expr, scope)
    else:
        runner.load([record], [user])
        [outcome] = runner.run(expr, scope)
    assert outcome == oracle
