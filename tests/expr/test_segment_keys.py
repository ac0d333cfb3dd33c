"""Segment keys of string values that DuckDB's JSON writer escapes: the compiled key cuts the text out of the
JSON only when it holds no backslash, and must give the same key as the interpreter either way."""

from __future__ import annotations

import pytest

from mixhouse.expr import parse
from tests.expr.conftest import Runner, event_scope

TEXTS = ["plain", "", 'q"u', "back\\slash", "line\nbreak", "tab\there", "\x01ctl", "é", "😀", "a/b", '"', "\\"]


@pytest.mark.parametrize("text", TEXTS)
def test_string_key_is_the_text(runner: Runner, text: str) -> None:
    runner.load([{"properties": {"s": text, "l": [text, text, "x", 1, None, {"k": 1}]}}])
    [scalar] = runner.run(parse('properties["s"]'), event_scope())
    [listed] = runner.run(parse('properties["l"]'), event_scope())
    assert scalar.keys == [text]
    assert listed.keys == sorted({text, "x", "1", "null"})


@pytest.mark.parametrize(
    "listed",
    [
        [],
        ["a", "b", "a"],
        ["", "é", "😀", "a/b"],
        ['q"u', "x"],  # escaped: the element-by-element path
        ["back\\slash"],
        ["line\nbreak", "x"],
        ["1", "2.0", "true", "null"],  # strings that look like other kinds stay their text
        ["a", 1],  # not all strings
        ["a", ["b"]],
        ["a", {"b": "c"}],
    ],
)
def test_list_of_strings_keys(runner: Runner, listed: list[object]) -> None:
    """A list of plain strings takes the cast to VARCHAR[] (printer._fan_out); it must give the keys the
    interpreter gives, as must every list that does not qualify."""
    runner.load([{"properties": {"l": listed}}])
    [row] = runner.run(parse('properties["l"]'), event_scope())
    expected = {str(v) if isinstance(v, str) else "1" for v in listed if not isinstance(v, list | dict)}
    assert row.keys == sorted(expected)
