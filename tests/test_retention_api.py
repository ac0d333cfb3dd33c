"""/retention parameters, errors and trailing intervals that have not begun yet."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.funnel_helpers import AUTH, load, query
from tests.server import PROJECT_ID, ServerProcess

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock


def _get(base: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH, timeout=30)


def test_retention_errors(server: ServerProcess) -> None:
    dates = {"from_date": "2024-01-10", "to_date": "2024-01-10"}
    missing = _get(server.url, "retention", **dates)
    assert missing.status_code == 400 and missing.json()["error"] == "Missing required parameter: born_event"
    cases: list[dict[str, Any]] = [
        {"born_event": "x", "retention_type": "sometimes"},
        {"born_event": "x", "unit": "hour"},
        {"born_event": "x", "interval": 91},
        {"born_event": "x", "interval_count": -1},
        {"born_event": "x", "unbounded_retention": "maybe"},
        {"born_event": "x", "born_where": 'properties["a" =='},
    ]
    for params in cases:
        r = _get(server.url, "retention", **dates, **params)
        assert r.status_code == 400, params
        assert r.json()["error"] and r.json()["request"].startswith("/api/query/retention")
    assert _get(server.url, "retention/addiction", **dates, event="x", addiction_unit="minute").status_code == 400
    assert _get(server.url, "events/retention", **dates).status_code == 400
    # The v2 reply grows with the square of the periods: a multi-year daily span is refused, not built.
    wide = _get(server.url, "events/retention", event='["x"]', from_date="2020-01-01", to_date="2024-01-10")
    assert wide.status_code == 400 and "at most 400 days" in wide.json()["error"]


def test_trailing_intervals_that_have_not_begun_are_left_out(server: ServerProcess) -> None:
    now = datetime.now(UTC)
    today = now.date()
    yesterday = today - timedelta(days=1)
    # Times that fall on those days at any hour: yesterday's noon, and today's first instant (never
    # after now, never yesterday, even a few seconds past midnight).
    midnight_ms = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() * 1000)
    load(
        server.url,
        [
            {"event": "trail-S", "distinct_id": "t1", "time": midnight_ms - 12 * 3_600_000},
            {"event": "trail-R", "distinct_id": "t1", "time": midnight_ms},
            {"event": "trail-S", "distinct_id": "t2", "time": midnight_ms},
        ],
    )
    got = query(
        server.url,
        "retention",
        from_date=yesterday.isoformat(),
        to_date=today.isoformat(),
        born_event="trail-S",
        event="trail-R",
        interval_count=5,
    )
    assert len(got[today.isoformat()]["counts"]) == 1  # only interval 0 has begun for today's cohort
    assert len(got[yesterday.isoformat()]["counts"]) == 2
    assert sum(cell["first"] for cell in got.values()) == 2


def _v2(base: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}/api/2.0/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH, timeout=30)


def _load_three_days(base: str) -> tuple[str, str]:
    """v2r1 active on each of the last three days (24 h apart), v2r2 only two days ago: (first, last) day."""
    now_ms = int(time.time() * 1000) - 1000
    day = 86_400_000
    load(
        base,
        [
            {"event": "v2r", "distinct_id": "v2r1", "time": now_ms - 2 * day},
            {"event": "v2r", "distinct_id": "v2r1", "time": now_ms - day},
            {"event": "v2r", "distinct_id": "v2r1", "time": now_ms},
            {"event": "v2r", "distinct_id": "v2r2", "time": now_ms - 2 * day},
        ],
    )
    last = datetime.fromtimestamp(now_ms / 1000, UTC).date()
    return (last - timedelta(days=2)).isoformat(), last.isoformat()


def test_v2_form_on_retention_counts_back_from_now(server: ServerProcess) -> None:
    first, last = _load_three_days(server.url)
    v2 = _v2(server.url, "retention", event='["v2r"]', type="unique", unit="day", interval=3)
    assert v2.status_code == 200, v2.text
    explicit = _v2(server.url, "events/retention", event='["v2r"]', unit="day", from_date=first, to_date=last)
    assert v2.json() == explicit.json()
    values = v2.json()["data"]["v2r"]["values"]
    assert values[first] == {"1 days later": 0.5, "2 days later": 0.5}
    # Today's form still needs its dates and born_event.
    assert _v2(server.url, "retention", born_event="v2r", unit="day", interval=3).status_code == 400


def test_v2_events_retention_as_csv(server: ServerProcess) -> None:
    first, last = _load_three_days(server.url)
    params = {"event": '["v2r"]', "unit": "day", "from_date": first, "to_date": last}
    as_json = _v2(server.url, "events/retention", **params).json()["data"]["v2r"]
    response = _v2(server.url, "events/retention", format="csv", **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = [line.split(",") for line in response.text.splitlines()]
    assert rows[0] == ["event", "date", *as_json["series"]]
    assert rows[1] == ["v2r", first, "0.5", "0.5"]
    assert rows[1:] == [
        ["v2r", day, *(repr(ratios[s]) if s in ratios else "" for s in as_json["series"])]
        for day, ratios in as_json["values"].items()
    ]
    assert _v2(server.url, "events/retention", format="xml", **params).status_code == 400
