"""`/api/2.0/engage/revenue` from the `$transactions` the PyPI SDK's `people_track_charge` writes:
per bucket and `$overall`, `amount` (the sum), `count` (profiles with a transaction) and `paid_count`
(those whose sum is above zero)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from mixpanel import Consumer, Mixpanel

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess

AUTH = (SA_USER, SA_SECRET)


def revenue(server: ServerProcess, **params: Any) -> httpx.Response:
    query = {"project_id": PROJECT_ID, **params}
    return httpx.get(f"{server.url}/api/2.0/engage/revenue", params=query, auth=AUTH, timeout=30)


def test_revenue_from_track_charge(server: ServerProcess) -> None:
    base = server.url
    mp = Mixpanel(TOKEN, consumer=Consumer(events_url=f"{base}/track", people_url=f"{base}/engage"))
    mp.people_track_charge("rev-a", 10, {"$time": "2023-03-01T10:00:00"})
    mp.people_track_charge("rev-a", 5.5, {"$time": "2023-03-01T23:59:59"})
    mp.people_track_charge("rev-b", 20, {"$time": "2023-03-02T00:00:00"})
    mp.people_track_charge("rev-c", -3, {"$time": "2023-03-02T08:00:00"})  # a refund: counted, not paid
    mp.people_track_charge("rev-a", 7, {"$time": "2023-03-09T12:00:00"})
    mp.people_track_charge("rev-d", 99, {"$time": "2023-02-28T23:59:59"})  # the day before the range

    day = revenue(server, from_date="2023-03-01", to_date="2023-03-03")
    assert day.status_code == 200, day.text
    body = day.json()
    assert body["status"] == "ok" and isinstance(body["session_id"], str)
    datetime.fromisoformat(body["computed_at"])
    assert body["results"] == {
        "$overall": {"amount": 32.5, "count": 3, "paid_count": 2},
        "2023-03-01": {"amount": 15.5, "count": 1, "paid_count": 1},
        "2023-03-02": {"amount": 17, "count": 2, "paid_count": 1},
        "2023-03-03": {"amount": 0, "count": 0, "paid_count": 0},
    }
    week = revenue(server, from_date="2023-03-01", to_date="2023-03-12", unit="week").json()["results"]
    assert week["2023-02-27"] == {"amount": 32.5, "count": 3, "paid_count": 2}  # the week of Monday Feb 27
    assert week["2023-03-06"] == {"amount": 7, "count": 1, "paid_count": 1}
    month = revenue(server, from_date="2023-02-01", to_date="2023-03-31", unit="month").json()["results"]
    assert month["2023-02-01"] == {"amount": 99, "count": 1, "paid_count": 1}
    assert month["$overall"] == {"amount": 138.5, "count": 4, "paid_count": 3}


def test_a_charge_without_time_is_dated_by_its_update(server: ServerProcess) -> None:
    base = server.url
    mp = Mixpanel(TOKEN, consumer=Consumer(events_url=f"{base}/track", people_url=f"{base}/engage"))
    before = datetime.now(UTC).date().isoformat()
    mp.people_track_charge("rev-now", 42)  # the SDK sends {"$amount": 42} and no $time
    after = datetime.now(UTC).date().isoformat()
    results = revenue(server, from_date=before, to_date=after).json()["results"]
    assert sum(results[d]["amount"] for d in {before, after} if d in results) >= 42
    profile = httpx.post(
        f"{base}/api/2.0/engage", data={"project_id": PROJECT_ID, "distinct_id": "rev-now"}, auth=AUTH
    ).json()["results"][0]["$properties"]
    [charge] = profile["$transactions"]
    assert charge["$amount"] == 42 and charge["$time"][:10] in {before, after}


def test_revenue_errors(server: ServerProcess) -> None:
    assert revenue(server, from_date="2023-03-01").json()["error"] == "Missing required parameter: to_date"
    bad_unit = revenue(server, from_date="2023-03-01", to_date="2023-03-02", unit="hour")
    assert bad_unit.status_code == 400 and bad_unit.json()["error"] == "Invalid parameter: unit"
    assert revenue(server, from_date="20230301", to_date="2023-03-02").status_code == 400
    assert httpx.get(f"{server.url}/api/2.0/engage/revenue", params={"from_date": "2023-03-01"}).status_code == 401
