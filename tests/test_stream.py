"""`/stream/query`, the activity stream (https://developer.mixpanel.com/reference/activity-stream-query): the events of some users in a date range,
identities resolved to the canonical id (as Mixpanel's reports do), duplicates collapsed, and Mixpanel's date-range rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import httpx
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog
from tests.test_query_engage import import_events, post_engage_batches

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

AUTH = (SA_USER, SA_SECRET)
NOW = int(time.time())


def day(offset: int = 0) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """u1 and its device id d1 (merged by the identity map), u2, and one duplicate of u1's purchase."""
    data_dir = tmp_path_factory.mktemp("stream") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    events: list[tuple[str, str, int, str, dict[str, Any]]] = [
        ("Viewed", "d1", NOW - 300, "a", {"page": "/home"}),
        ("Signed Up", "u1", NOW - 200, "b", {"plan": "pro"}),
        ("Purchase", "u1", NOW - 100, "c", {"amount": 9.5}),
        ("Purchase", "u1", NOW - 100, "c", {"amount": 9.5}),  # a retry: same $insert_id
        ("Viewed", "u2", NOW - 150, "d", {"page": "/pricing"}),
        ("Old", "u1", NOW - 3 * 86400, "e", {}),
    ]
    import_events(
        proc.url,
        [{"event": e, "properties": {"distinct_id": d, "time": t, "$insert_id": i, **p}} for e, d, t, i, p in events],
    )
    post_engage_batches(proc.url, [{"$token": "TOKEN123", "$distinct_id": "u1", "$set": {"plan": "pro"}}])
    # The merge of d1 into u1, written where the identity resolver keeps it, while the server is stopped.
    proc.stop()
    db = duckdb.connect(str(data_dir / "events.duckdb"))
    db.execute(
        "INSERT OR REPLACE INTO identity_map (project_id, distinct_id, canonical_id) VALUES (?, 'd1', 'u1')",
        [PROJECT_ID],
    )
    db.close()
    proc.start()
    yield proc
    proc.stop()


def stream(server: ServerProcess, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/2.0/stream/query", params={"project_id": str(PROJECT_ID), **params}, auth=AUTH)


def summary(body: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(e["event"], e["properties"]["$distinct_id"], e["properties"]["time"]) for e in body["results"]["events"]]


def test_events_of_a_user_across_its_identities(server: ServerProcess) -> None:
    response = stream(server, distinct_ids='["d1"]', from_date=day(-1), to_date=day())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    # d1 resolves to u1: u1's events and d1's, oldest first, under the canonical id, the retry once.
    assert summary(body) == [("Viewed", "u1", NOW - 300), ("Signed Up", "u1", NOW - 200), ("Purchase", "u1", NOW - 100)]
    purchase = body["results"]["events"][2]["properties"]
    assert purchase["amount"] == 9.5 and purchase["$insert_id"] == "c"
    assert list(purchase)[:2] == ["time", "$distinct_id"]


def test_several_users_and_the_date_range(server: ServerProcess) -> None:
    body = stream(server, distinct_ids='["u2", "u1"]', from_date=day(-1), to_date=day()).json()
    assert [e for e, _, _ in summary(body)] == ["Viewed", "Signed Up", "Viewed", "Purchase"]
    wider = stream(server, distinct_ids='["u1"]', from_date=day(-5), to_date=day()).json()
    assert summary(wider)[0][0] == "Old"
    assert summary(stream(server, distinct_ids='["nobody"]', from_date=day(-1), to_date=day()).json()) == []


def test_post_with_form_body_on_the_query_prefix(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/api/query/stream/query",
        data={"project_id": str(PROJECT_ID), "distinct_ids": '["u2"]', "from_date": day(-1), "to_date": day()},
        auth=AUTH,
    )
    assert summary(response.json()) == [("Viewed", "u2", NOW - 150)]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"from_date": day(-1), "to_date": day()}, "Missing required parameter: distinct_ids"),
        ({"distinct_ids": '["u1"]', "to_date": day()}, "Missing required parameter: from_date"),
        ({"distinct_ids": '["u1"]', "from_date": day(-1)}, "Missing required parameter: to_date"),
        ({"distinct_ids": '["u1"]', "from_date": day(-1), "to_date": day(2)}, "to_date cannot be later than today"),
        ({"distinct_ids": '["u1"]', "from_date": day(), "to_date": day(-1)}, "from_date cannot be later than to_date"),
        (
            {"distinct_ids": '["u1"]', "from_date": day(-366), "to_date": day()},
            "Date range exceeds 365 days into the past",
        ),
        ({"distinct_ids": '["u1"', "from_date": day(-1), "to_date": day()}, "Invalid JSON Format: distinct_ids"),
        (
            {"distinct_ids": '{"a": 1}', "from_date": day(-1), "to_date": day()},
            "Invalid parameter: distinct_ids must be a JSON array of strings",
        ),
    ],
)
def test_bad_requests(server: ServerProcess, params: dict[str, str], error: str) -> None:
    response = stream(server, **params)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_365_days_back_is_still_allowed(server: ServerProcess) -> None:
    assert stream(server, distinct_ids='["u1"]', from_date=day(-365), to_date=day()).status_code == 200


def test_engage_reads_profiles_under_the_canonical_id(server: ServerProcess) -> None:
    # The profile lives under u1; asking by the merged device id finds it (https://developer.mixpanel.com/reference/engage-query: profiles are exported under the canonical id).
    response = httpx.get(
        f"{server.url}/api/2.0/engage", params={"project_id": str(PROJECT_ID), "distinct_id": "d1"}, auth=AUTH
    )
    assert [r["$distinct_id"] for r in response.json()["results"]] == ["u1"]
