"""Saved funnels over the App API, /funnels parameters and errors, and the legacy v2 funnel family."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.funnel_helpers import AUTH, load, query, save_funnel
from tests.server import PROJECT_ID, ServerProcess

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

APP = f"/api/app/projects/{PROJECT_ID}/funnels"
T0 = 1_704_880_800_000  # 2024-01-10 10:00 UTC


def _get(base: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH, timeout=30)


def test_saved_funnel_lifecycle(server: ServerProcess) -> None:
    body = {
        "name": "Lifecycle",
        "steps": [{"event": "life-A"}, {"event": "life-B", "where": 'properties["x"] == 1', "label": "Bee"}],
        "length": 2,
        "length_unit": "hour",
    }
    created = httpx.post(server.url + APP, json=body, auth=AUTH).json()
    assert created["status"] == "ok"
    fid = created["results"]["funnel_id"]
    assert created["results"]["counting"] == "uniques"  # the default
    item = httpx.get(f"{server.url}{APP}/{fid}", auth=AUTH).json()["results"]
    assert item["steps"][1] == {"event": "life-B", "where": 'properties["x"] == 1', "label": "Bee"}
    patched = httpx.patch(f"{server.url}{APP}/{fid}", json={"name": "Renamed", "counting": "totals"}, auth=AUTH)
    assert patched.json()["results"]["name"] == "Renamed"
    assert patched.json()["results"]["counting"] == "totals"
    assert patched.json()["results"]["length"] == 2  # untouched fields stay
    listed = query(server.url, "funnels/list")
    assert {"funnel_id": fid, "name": "Renamed"} in listed
    assert httpx.delete(f"{server.url}{APP}/{fid}", auth=AUTH).json()["results"] == {"funnel_id": fid, "deleted": True}
    gone = httpx.get(f"{server.url}{APP}/{fid}", auth=AUTH)
    assert gone.status_code == 404 and gone.json()["status"] == "error"
    assert {"funnel_id": fid, "name": "Renamed"} not in query(server.url, "funnels/list")


def test_saved_funnel_validation(server: ServerProcess) -> None:
    good: dict[str, Any] = {"name": "v", "steps": [{"event": "a"}, {"event": "b"}], "length": 1, "length_unit": "day"}
    bad_bodies = [
        {k: v for k, v in good.items() if k != "name"},
        {**good, "steps": [{"event": "a"}]},
        {**good, "steps": [{"event": ""}, {"event": "b"}]},
        {**good, "length_unit": "fortnight"},
        {**good, "length": 91},
        {**good, "length": 2161, "length_unit": "hour"},
        {**good, "counting": "sometimes"},
        {**good, "steps": [{"event": "a", "where": "properties[ == 1"}, {"event": "b"}]},
    ]
    for body in bad_bodies:
        r = httpx.post(server.url + APP, json=body, auth=AUTH)
        assert r.status_code == 400, body
        assert r.json()["status"] == "error"
    assert httpx.post(server.url + APP, json=good).status_code == 401
    assert httpx.post(server.url + APP, json={**good, "length": 90}, auth=AUTH).status_code == 200


def test_funnel_parameters(server: ServerProcess) -> None:
    load(
        server.url,
        [
            {"event": "par-A", "distinct_id": "p1", "time": T0, "src": "ad"},
            {"event": "par-B", "distinct_id": "p1", "time": T0 + 30 * 60_000},
            {"event": "par-A", "distinct_id": "p2", "time": T0 + 86_400_000, "src": "seo"},
            {"event": "par-B", "distinct_id": "p2", "time": T0 + 86_400_000 + 5 * 60_000},
        ],
    )
    fid = save_funnel(
        server.url,
        {"name": "params", "steps": [{"event": "par-A"}, {"event": "par-B"}], "length": 1, "length_unit": "day"},
    )
    dates: dict[str, Any] = {"from_date": "2024-01-10", "to_date": "2024-01-11"}
    both = query(server.url, "funnels", funnel_id=fid, interval=2, **dates)
    assert both["meta"]["dates"] == ["2024-01-10"]
    assert [s["count"] for s in both["data"]["2024-01-10"]["steps"]] == [2, 2]
    short = query(server.url, "funnels", funnel_id=fid, length=10, length_unit="minute", **dates)
    assert [s["count"] for s in short["data"]["2024-01-10"]["steps"]] == [1, 0]
    assert [s["count"] for s in short["data"]["2024-01-11"]["steps"]] == [1, 1]
    filtered = query(server.url, "funnels", funnel_id=fid, where='properties["src"] == "ad"', **dates)
    assert filtered["data"]["2024-01-11"]["steps"][0]["count"] == 0
    top = query(server.url, "funnels", funnel_id=fid, on='properties["src"]', limit=1, interval=2, **dates)
    assert set(top["data"]["2024-01-10"]) == {"$overall", "ad"}  # ties broken by name


def test_funnel_errors(server: ServerProcess) -> None:
    dates: dict[str, Any] = {"from_date": "2024-01-10", "to_date": "2024-01-10"}
    missing = _get(server.url, "funnels", **dates)
    assert missing.status_code == 400
    assert missing.json()["error"] == "Missing required parameter: funnel_id"
    assert _get(server.url, "funnels", funnel_id=999_999, **dates).status_code == 400
    fid = save_funnel(server.url, {"name": "err", "steps": ["e1", "e2"], "length": 1, "length_unit": "day"})
    too_long = _get(server.url, "funnels", funnel_id=fid, length=91, length_unit="day", **dates)
    assert too_long.status_code == 400
    bad_where = _get(server.url, "funnels", funnel_id=fid, where='properties["x" ==', **dates)
    assert bad_where.status_code == 400 and "^" in bad_where.json()["error"]
    assert _get(server.url, "funnels", funnel_id=fid, unit="hour", **dates).status_code == 400
    assert _get(server.url, "funnels", funnel_id=fid, from_date="2024-01-10").status_code == 400


def test_legacy_v2_funnels_by_name(server: ServerProcess) -> None:
    now_ms = int(time.time() * 1000) - 3_600_000
    load(
        server.url,
        [
            {"event": "v2-home", "distinct_id": "l1", "time": now_ms, "referrer": "api"},
            {"event": "v2-signup", "distinct_id": "l1", "time": now_ms + 1000},
            {"event": "v2-home", "distinct_id": "l2", "time": now_ms, "referrer": "funnel"},
        ],
    )
    save_funnel(server.url, {"name": "V2 signup", "steps": ["v2-home", "v2-signup"], "length": 1, "length_unit": "day"})
    today = datetime.now(UTC).date()
    week = (today - timedelta(days=today.weekday())).isoformat()
    names = query(server.url, "funnels/names", unit="week", interval=1)
    assert "V2 signup" in names
    # The same path serves today's form (funnel_id) and v2's (funnel = JSON array of names).
    legacy = _get(server.url, "funnels", funnel='["V2 signup"]', unit="week", interval=2).json()
    body = legacy["V2 signup"]
    assert body["meta"]["dates"][-1] == week
    cell = body["data"][week]
    if datetime.fromtimestamp(now_ms / 1000, UTC).date() >= today - timedelta(days=today.weekday()):
        assert cell["analysis"] == {"completion": 0.5, "starting_amount": 2, "steps": 2, "worst": 2}
        assert cell["steps"][1] == {"count": 1, "goal": "v2-signup", "overall_conv_ratio": 0.5, "step_conv_ratio": 0.5}
    dates = query(server.url, "funnels/dates", funnel='["V2 signup"]', unit="week")
    assert dates["V2 signup"][-1] in (week, (today - timedelta(days=today.weekday() + 7)).isoformat())
    names_of_props = query(server.url, "funnels/properties/names", funnel="V2 signup", unit="week", interval=2)
    assert {"count": 2, "name": "referrer", "property": "referrer"} in names_of_props["V2 signup"]["names"]
    by_prop = query(server.url, "funnels/properties", funnel="V2 signup", name="referrer", unit="week", interval=2)
    if datetime.fromtimestamp(now_ms / 1000, UTC).date() >= today - timedelta(days=today.weekday()):
        assert by_prop[week]["meta"] == {"name": "referrer", "steps": 2, "values": ["api", "funnel"]}
        # api: its one user went to step 2; funnel: its one user stopped at step 1.
        assert by_prop[week]["values"]["api"] == {
            "end": 2,
            "start": 2,
            "steps": {"2": {"count": 1}},
            "total_visitors": 1,
        }
        assert by_prop[week]["values"]["funnel"] == {
            "end": 1,
            "start": 1,
            "steps": {"1": {"count": 1}},
            "total_visitors": 1,
        }
    assert _get(server.url, "funnels", funnel='["V2 signup"]', unit="day", interval=1).status_code == 400
    assert _get(server.url, "funnels", funnel='["no such funnel"]', unit="week", interval=1).status_code == 400


def test_totals_with_many_attempts(server: ServerProcess) -> None:
    """Enough attempts that DuckDB plans a real ASOF join for the re-entry chain (not its small-input loop)."""
    events = []
    for u in range(300):
        for k in range(3):  # three attempts per user, one hour apart, each converting after a minute
            t = T0 + k * 3_600_000 + u
            events.append({"event": "many-A", "distinct_id": f"m{u}", "time": t})
            events.append({"event": "many-B", "distinct_id": f"m{u}", "time": t + 60_000})
    load(server.url, events)
    fid = save_funnel(
        server.url,
        {"name": "many", "steps": ["many-A", "many-B"], "length": 30, "length_unit": "minute", "counting": "totals"},
    )
    got = query(server.url, "funnels", funnel_id=fid, from_date="2024-01-10", to_date="2024-01-10")
    assert [s["count"] for s in got["data"]["2024-01-10"]["steps"]] == [900, 900]


def test_merged_ids_under_an_expression_that_reads_the_id(server: ServerProcess) -> None:
    """With merged ids the kernel resolves users itself, except when an expression reads the id: then
    the id must already be the canonical one (`on` by $distinct_id keys the merged user once)."""
    load(
        server.url,
        [
            {"event": "mid-A", "distinct_id": "$device:mid-d1", "time": T0, "$device_id": "mid-d1"},
            {
                "event": "mid-B",
                "distinct_id": "mid-user",
                "time": T0 + 60_000,
                "$device_id": "mid-d1",
                "$user_id": "mid-user",
            },
        ],
    )
    fid = save_funnel(server.url, {"name": "mid", "steps": ["mid-A", "mid-B"], "length": 1, "length_unit": "hour"})
    got = query(
        server.url,
        "funnels",
        funnel_id=fid,
        from_date="2024-01-10",
        to_date="2024-01-10",
        on='properties["$distinct_id"]',
    )
    day = got["data"]["2024-01-10"]
    assert set(day) == {"$overall", "mid-user"}
    assert [s["count"] for s in day["mid-user"]] == [1, 1]
    plain = query(server.url, "funnels", funnel_id=fid, from_date="2024-01-10", to_date="2024-01-10")
    assert [s["count"] for s in plain["data"]["2024-01-10"]["steps"]] == [1, 1]


def test_windows_in_weeks_and_months(server: ServerProcess) -> None:
    # A week is 7 days, a month 30 days, from each entry (the 90-day cap applies: 12 weeks, 3 months).
    day = 86_400_000
    load(
        server.url,
        [
            {"event": "wm-A", "distinct_id": "wm1", "time": T0},
            {"event": "wm-B", "distinct_id": "wm1", "time": T0 + 6 * day},  # in 1 week
            {"event": "wm-A", "distinct_id": "wm2", "time": T0},
            {"event": "wm-B", "distinct_id": "wm2", "time": T0 + 8 * day},  # in 2 weeks, in 1 month
            {"event": "wm-A", "distinct_id": "wm3", "time": T0},
            {"event": "wm-B", "distinct_id": "wm3", "time": T0 + 31 * day},  # in 2 months only
        ],
    )
    fid = save_funnel(server.url, {"name": "wm", "steps": ["wm-A", "wm-B"], "length": 1, "length_unit": "week"})
    dates: dict[str, Any] = {"from_date": "2024-01-10", "to_date": "2024-01-10"}

    def converted(**window: Any) -> int:
        return int(
            query(server.url, "funnels", funnel_id=fid, **window, **dates)["data"]["2024-01-10"]["steps"][1]["count"]
        )

    assert converted() == 1  # the saved window, 1 week
    assert converted(length=2, length_unit="week") == 2
    assert converted(length=1, length_unit="month") == 2
    assert converted(length=2, length_unit="month") == 3
    assert converted(length=12, length_unit="week") == 3
    assert _get(server.url, "funnels", funnel_id=fid, length=13, length_unit="week", **dates).status_code == 400
    assert _get(server.url, "funnels", funnel_id=fid, length=4, length_unit="month", **dates).status_code == 400
    saved = httpx.post(
        server.url + APP, json={"name": "m", "steps": ["a", "b"], "length": 3, "length_unit": "month"}, auth=AUTH
    )
    assert saved.status_code == 200 and saved.json()["results"]["length_unit"] == "month"
