"""A bare property as the whole filter tests the value's truth (real-clients §2 item 13: mixpanel-utils and
mixpanel-data-export send `where=properties["$email"]`), in the interpreter and in the compiled SQL alike."""

from __future__ import annotations

from typing import Any

import pytest

from mixhouse.expr import interpreter as interp
from mixhouse.expr import parse
from tests.expr.conftest import Runner, event_scope, expected

CASES: list[tuple[Any, bool]] = [
    ("a@b.c", True),
    ("", False),
    ("false", False),
    (0, False),
    (2, True),
    (True, True),
    (False, False),
    (None, False),
    ([], False),
    (["x"], True),
]


@pytest.mark.parametrize(("value", "passes"), CASES)
def test_bare_property_filter_is_truthiness(value: Any, passes: bool, runner: Runner) -> None:
    record = {"time_ms": 1704067200000, "distinct_id": "u1", "properties": {"$email": value}}
    expr = parse('properties["$email"]')
    assert interp.passes(expr, record) is passes
    runner.load([record], [{}])
    [outcome] = runner.run(expr, event_scope())
    assert outcome == expected(expr, record, {})
    assert outcome.passes is passes


def test_missing_property_fails_and_other_non_booleans_still_must_be_true(runner: Runner) -> None:
    record = {"time_ms": 1704067200000, "distinct_id": "u1", "properties": {"n": 5}}
    assert interp.passes(parse('properties["$email"]'), record) is False
    # Only a bare property is read for its truth: an arithmetic result is not a filter.
    assert interp.passes(parse('properties["n"] + 1'), record) is False
    runner.load([record], [{}])
    [outcome] = runner.run(parse('properties["n"] + 1'), event_scope())
    assert outcome.passes is False
