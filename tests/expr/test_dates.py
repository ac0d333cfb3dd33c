"""Date strings read in SQL exactly as the interpreter reads them: shape, calendar, fraction, zone, range.

The printer matches the shape with RE2 and lets DuckDB's cast read the wall time; these strings sit on
the edges where the two could part (fraction digits past microseconds, offsets, year 0, pre-1970 floors).
"""

from __future__ import annotations

import json

import pytest

from mixhouse.expr import parse
from tests.expr.conftest import Runner, event_scope, expected

STRINGS = [
    "2024-01-02",
    "2024-01-02T03:04",
    "2024-01-02 03:04",
    "2024-01-02T03:04:05",
    "2024-01-02T03:04:05Z",
    "2024-01-02T03:04Z",
    "2024-01-02T03:04:05.1",
    "2024-01-02T03:04:05.123",
    "2024-01-02T03:04:05.1239",
    "2024-01-02T03:04:05.9999999",
    "2024-01-02T03:04:05.999999999999999999999999Z",
    "1969-12-31T23:59:59.0005",
    "1969-12-31T23:59:59.9995Z",
    "1900-03-01T00:00:00.0001-01:00",
    "2024-06-15T12:00:00+05:30",
    "2024-06-15T12:00-23:59",
    "2024-06-15 12:00:00.5+00:00",
    "2024-06-15T12:00:00-00:00",
    "2024-02-29",
    "2023-02-29",
    "2024-02-30T00:00:00Z",
    "2024-13-01",
    "2024-00-10",
    "2024-01-00",
    "0000-01-01",
    "0000-01-01T00:00:00+01:00",
    "0000-12-31T23:30:00-01:00",
    "0001-01-01",
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:30:00+00:30",
    "9999-12-31T23:59:59.999",
    "9999-12-31T23:59:59-00:01",
    "2024-01-02T24:00:00",
    "2024-01-02T23:60",
    "2024-01-02T23:59:60",
    "2024-01-02T03:04:05+24:00",
    "2024-01-02T03:04:05+05",
    "2024-01-02T03:04:05.",
    "2024-01-02T03",
    "2024-1-2",
    " 2024-01-02",
    "2024-01-02 ",
    "2024-01-02t03:04",
    "2024-01-02T03:04:05z",
    "2024-01-02T03:04:05 Z",
    "20240102",
    "2024-01-02T03:04:05.123+05:30",
    "2024-01-02-05:00",
    "12024-01-02",
    "2024-01-02T03:04:05.12345678901234567890+01:00",
    "2024-03-10T02:30:00",
    "2024-11-03T01:30:00",
    "",
    "-",
    "Z",
]


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_date_strings(runner: Runner, tz: str) -> None:
    events = [{"time_ms": 1704067200000, "properties": {"d": s}} for s in STRINGS]
    runner.load(events)
    # number(): the exact epoch ms (as seconds); the comparison: a date string met by a datetime.
    for text in ('number(datetime(properties["d"]))', 'properties["$time"] > properties["d"]'):
        expr = parse(text)
        got = runner.run(expr, event_scope(tz))
        want = [expected(expr, ev, None, tz) for ev in events]
        bad = [(s, g, w) for s, g, w in zip(STRINGS, got, want, strict=True) if g != w]
        # DST gaps and overlaps are resolved by zoneinfo in Python and by ICU in SQL (docs/expressions.md).
        bad = [b for b in bad if not (tz == "America/New_York" and b[0].startswith(("2024-03-10T02", "2024-11-03T01")))]
        assert not bad, json.dumps([(s, str(g), str(w)) for s, g, w in bad], indent=1)
