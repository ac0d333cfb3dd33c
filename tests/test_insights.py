"""Saved Insights reports: the App API routes that save bookmarks and `/insights?bookmark_id=` (
https://developer.mixpanel.com/reference/insights-query). The DST and segment cases are golden files (tests/golden/engage/insights_*.json)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog
from tests.test_query_engage import add_project, import_events

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

AUTH = (SA_USER, SA_SECRET)
BOOKMARKS = f"/api/app/projects/{PROJECT_ID}/bookmarks"
DAY = 86400
T0 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())  # a Wednesday


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("insights") / "data"
    seed_catalog(data_dir)  # project timezone UTC
    proc = ServerProcess(data_dir).start()
    rows = [
        # (event, user, day offset from 2024-05-01, amount)
        ("Purchase", "a", 0, 10),
        ("Purchase", "a", 0, 20),
        ("Purchase", "b", 0, 5),
        ("Purchase", "a", 1, 1),
        ("Purchase", "c", 31, 7),  # 2024-06-01
        ("Signup", "a", 0, 0),
    ]
    import_events(
        proc.url,
        [
            {
                "event": e,
                "properties": {"distinct_id": u, "time": T0 + d * DAY + 3600, "$insert_id": f"i{k}", "amount": a},
            }
            for k, (e, u, d, a) in enumerate(rows)
        ],
    )
    now = int(datetime.now(UTC).timestamp())
    import_events(proc.url, [{"event": "Recent", "properties": {"distinct_id": "a", "time": now - 60}}])
    yield proc
    proc.stop()


def save(server: ServerProcess, query: dict[str, Any], name: str = "report") -> int:
    response = httpx.post(f"{server.url}{BOOKMARKS}", json={"name": name, "query": query}, auth=AUTH)
    assert response.status_code == 200, response.text
    bookmark_id: int = response.json()["results"]["id"]
    return bookmark_id


def report(server: ServerProcess, bookmark_id: int | str, prefix: str = "/api/query") -> httpx.Response:
    return httpx.get(
        f"{server.url}{prefix}/insights",
        params={"project_id": str(PROJECT_ID), "bookmark_id": str(bookmark_id)},
        auth=AUTH,
    )


def test_daily_counts_with_a_where(server: ServerProcess) -> None:
    bid = save(
        server,
        {"event": "Purchase", "where": 'properties["amount"] >= 5', "from_date": "2024-05-01", "to_date": "2024-05-03"},
    )
    body = report(server, bid).json()
    assert body["headers"] == ["$event"]
    assert body["date_range"] == {
        "from_date": "2024-05-01T00:00:00+00:00",
        "to_date": "2024-05-03T23:59:59.999000+00:00",
    }
    assert body["series"] == {
        "Purchase": {"2024-05-01T00:00:00+00:00": 3, "2024-05-02T00:00:00+00:00": 0, "2024-05-03T00:00:00+00:00": 0}
    }
    computed = datetime.fromisoformat(body["computed_at"])
    assert computed.utcoffset() == timedelta(0) and abs((datetime.now(UTC) - computed).total_seconds()) < 60


def test_monthly_average_and_several_events(server: ServerProcess) -> None:
    bid = save(
        server,
        {
            "event": ["Purchase", "Signup"],
            "unit": "month",
            "type": "average",
            "from_date": "2024-05-01",
            "to_date": "2024-06-30",
        },
    )
    series = report(server, bid, "/api/2.0").json()["series"]
    # May: 4 purchases by 2 users -> 2.0; June: 1 by 1 -> 1.0; Signup: 1 by 1 in May.
    assert series == {
        "Purchase": {"2024-05-01T00:00:00+00:00": 2.0, "2024-06-01T00:00:00+00:00": 1.0},
        "Signup": {"2024-05-01T00:00:00+00:00": 1.0, "2024-06-01T00:00:00+00:00": 0.0},
    }


def test_last_days_end_today(server: ServerProcess) -> None:
    bid = save(server, {"event": "Recent", "last": 2})
    body = report(server, bid).json()
    today = datetime.now(UTC).date()
    keys = [f"{today - timedelta(days=1)}T00:00:00+00:00", f"{today}T00:00:00+00:00"]
    assert body["series"] == {"Recent": {keys[0]: 0, keys[1]: 1}}


def test_bookmark_routes(server: ServerProcess) -> None:
    query = {"event": "Purchase", "from_date": "2024-05-01", "to_date": "2024-05-01"}
    bid = save(server, query, name="Daily purchases")
    item = f"{server.url}{BOOKMARKS}/{bid}"
    got = httpx.get(item, auth=AUTH).json()["results"]
    assert (got["id"], got["name"], got["query"], got["project_id"]) == (bid, "Daily purchases", query, PROJECT_ID)
    assert bid in [b["id"] for b in httpx.get(f"{server.url}{BOOKMARKS}", auth=AUTH).json()["results"]]
    changed = {**query, "type": "unique"}
    patched = httpx.patch(item, json={"name": "Daily buyers", "query": changed}, auth=AUTH).json()["results"]
    assert (patched["name"], patched["query"]) == ("Daily buyers", changed)
    assert report(server, bid).json()["series"] == {"Purchase": {"2024-05-01T00:00:00+00:00": 2}}
    assert httpx.delete(item, auth=AUTH).json()["status"] == "ok"
    missing = report(server, bid)
    assert missing.status_code == 404
    assert missing.json()["error"] == f"Report not found for id {bid}"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({}, "query.event must be an event name or a non-empty list of names"),
        ({"event": "x", "unit": "year"}, "query.unit must be one of hour, day, week, month"),
        ({"event": "x", "type": "sum"}, "query.type must be one of general, unique, average"),
        ({"event": "x", "last": 0}, "query.last must be a number of days from 1 to 3650"),
        ({"event": "x", "from_date": "2024-05-02", "to_date": "2024-05-01"}, "from_date cannot be later than to_date"),
        ({"event": "x", "from_date": "2024-05-02"}, "Missing required parameter: to_date"),
        ({"event": "x", "on": 5}, "query.on must be an expression string"),
    ],
)
def test_bad_queries_are_refused(server: ServerProcess, query: dict[str, Any], error: str) -> None:
    response = httpx.post(f"{server.url}{BOOKMARKS}", json={"name": "r", "query": query}, auth=AUTH)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "error": error}


def test_bad_where_in_a_saved_query_is_refused_with_a_caret(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}{BOOKMARKS}", json={"name": "r", "query": {"event": "x", "where": "1 and"}}, auth=AUTH
    )
    assert response.status_code == 400
    assert response.json()["error"].endswith("1 and\n     ^")


def test_a_saved_query_reads_events_only(server: ServerProcess) -> None:
    """A report reads events: `user[...]` is refused when the report is saved, the caret under it in the
    user's own text."""
    where = 'properties["amount"] > 1 and user["plan"] == "pro"'
    response = httpx.post(
        f"{server.url}{BOOKMARKS}", json={"name": "r", "query": {"event": "x", "where": where}}, auth=AUTH
    )
    assert response.status_code == 400
    assert response.json()["error"] == (f"user[...] is not available in this query at column 30\n{where}\n{' ' * 29}^")


def test_insights_parameters(server: ServerProcess) -> None:
    missing = httpx.get(f"{server.url}/api/query/insights", params={"project_id": str(PROJECT_ID)}, auth=AUTH)
    assert missing.status_code == 400
    assert missing.json() == {
        "request": f"/api/query/insights?project_id={PROJECT_ID}",
        "error": "Missing required parameter: bookmark_id",
    }
    assert report(server, "abc").json()["error"] == "Invalid parameter: bookmark_id"
    # Past SQLite's integers (found by the API fuzzer): not found, not a server error.
    huge = report(server, 29362328955686707200)
    assert (huge.status_code, huge.json()["error"]) == (404, "Report not found for id 29362328955686707200")
    add_project(server, 4545)
    theirs = httpx.post(
        f"{server.url}/api/app/projects/4545/bookmarks", json={"name": "t", "query": {"event": "x"}}, auth=AUTH
    ).json()["results"]["id"]
    assert report(server, theirs).status_code == 404
