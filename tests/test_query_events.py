"""Event endpoints that depend on "today" (`/events/top`, discovery defaults) and the request forms
clients use: both path prefixes, GET and POST (form and JSON), service accounts, the probes of
airbyte and tap (`events/properties/top` without `event`, `engage/properties`). Date-fixed breakdowns
are golden cases in test_query_segmentation.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess, seed_catalog

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

PROJECT, TOKEN, SECRET = 7401, "EV-TOKEN", "EV-SECRET"
AUTH = (SECRET, "")


@pytest.fixture(scope="module")
def events_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("events") / "data"
    seed_catalog(data_dir, project_id=PROJECT, token=TOKEN, secret=SECRET, api_key="EV-KEY")
    server = ServerProcess(data_dir).start()
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = int((midnight + (now - midnight) / 2).timestamp() * 1000)
    yesterday = int((midnight - timedelta(hours=6)).timestamp() * 1000)
    old = int((midnight - timedelta(days=45)).timestamp() * 1000)

    def ev(name: str, t: int, who: str, **props: Any) -> dict[str, Any]:
        return {"event": name, "properties": {"distinct_id": who, "time": t, **props}}

    events = [
        # pages: today 3 events by 2 users; yesterday 4 events by 4 users.
        *[ev("pages", today + i, f"u{i % 2}", plan="pro") for i in range(3)],
        *[ev("pages", yesterday + i, f"y{i}") for i in range(4)],
        # funnel: today 1, yesterday 0. projects: yesterday only (not in today's top).
        ev("funnel", today, "u1"),
        ev("projects", yesterday, "u1"),
        # older than 31 days: outside discovery defaults.
        ev("ancient", old, "u1", legacy=1),
    ]
    response = httpx.post(f"{server.url}/import", json=events, auth=AUTH)
    assert response.status_code == 200, response.text
    for profile in (
        {"$distinct_id": "u0", "$set": {"$email": "a@b.c"}},
        {"$distinct_id": "u1", "$set": {"$email": "d@e.f"}},
    ):
        body = {"$token": TOKEN, "$ignore_time": True, **profile}
        response = httpx.post(f"{server.url}/engage", json=[body], params={"verbose": "1"})
        assert response.status_code == 200, response.text
    yield server
    server.stop()


def test_events_top_general(events_server: ServerProcess) -> None:
    body = httpx.get(f"{events_server.url}/api/query/events/top", params={"type": "general"}, auth=AUTH).json()
    assert body == {
        "events": [
            {"amount": 3, "event": "pages", "percent_change": (3 - 4) / 4},
            {"amount": 1, "event": "funnel", "percent_change": 1.0},
        ],
        "type": "general",
    }


def test_events_top_unique_and_limit(events_server: ServerProcess) -> None:
    body = httpx.get(
        f"{events_server.url}/api/2.0/events/top", params={"type": "unique", "limit": "1"}, auth=AUTH
    ).json()
    assert body == {"events": [{"amount": 2, "event": "pages", "percent_change": (2 - 4) / 4}], "type": "unique"}


def test_events_top_average(events_server: ServerProcess) -> None:
    body = httpx.get(f"{events_server.url}/api/query/events/top", params={"type": "average"}, auth=AUTH).json()
    assert body["events"][0] == {"amount": 1.5, "event": "pages", "percent_change": (1.5 - 1.0) / 1.0}


def test_event_names_default_to_the_last_31_days(events_server: ServerProcess) -> None:
    body = httpx.get(f"{events_server.url}/api/query/events/names", params={"type": "general"}, auth=AUTH).json()
    assert body == ["pages", "funnel", "projects"]


def test_airbyte_probe_properties_top_without_event(events_server: ServerProcess) -> None:
    response = httpx.get(f"{events_server.url}/api/query/events/properties/top", auth=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body)[:1] != [] and body["plan"] == {"count": 3}
    assert "legacy" not in body  # 45 days old
    assert len(body) <= 10  # default limit
    tap = httpx.get(f"{events_server.url}/api/2.0/events/properties/top", params={"limit": "2000"}, auth=AUTH).json()
    assert set(body) <= set(tap)


def test_engage_properties_probe(events_server: ServerProcess) -> None:
    where = 'properties["$last_seen"] >= "2024-01-01T00:00:00Z"'  # airbyte's probe; these profiles have none
    body = httpx.get(f"{events_server.url}/api/query/engage/properties", params={"where": where}, auth=AUTH).json()
    assert body == {"status": "ok", "results": {}}
    body = httpx.get(f"{events_server.url}/api/2.0/engage/properties", params={"limit": "2000"}, auth=AUTH).json()
    assert body == {"status": "ok", "results": {"$email": {"count": 2, "type": "string"}}}


def test_post_form_and_json_and_service_account(events_server: ServerProcess) -> None:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    params = {"event": "pages", "from_date": day, "to_date": day, "on": 'properties["plan"]'}
    expected = {"data": {"series": [day], "values": {"pro": {day: 3}}}, "legend_size": 1}
    url = f"{events_server.url}/api/query/segmentation/"
    assert httpx.post(url, data=params, auth=AUTH).json() == expected
    assert httpx.post(url, json=params, auth=AUTH).json() == expected
    service = {**params, "project_id": str(PROJECT)}
    assert httpx.get(url, params=service, auth=("sa.user", "sa-secret")).json() == expected


def test_wrong_credentials(events_server: ServerProcess) -> None:
    response = httpx.get(f"{events_server.url}/api/query/events/top", auth=("nope", ""))
    assert response.status_code == 401


def test_properties_top_leaves_out_the_servers_bookkeeping(events_server: ServerProcess) -> None:
    # Every stored event carries $insert_id and what the server adds ($mp_api_*, mp_processing_time_ms,
    # $import on /import): counted, they would fill the top of every list. What the sender sent stays,
    # SDK-set properties such as mp_lib included.
    now_ms = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    sent = [
        {"event": "top-props", "properties": {"distinct_id": f"tp{i}", "time": now_ms, "$insert_id": f"tp-{i}",
                                              "mp_lib": "python", "color": "red", **({"size": i} if i else {})}}
        for i in range(3)
    ]  # fmt: skip
    assert httpx.post(f"{events_server.url}/import", json=sent, auth=AUTH).status_code == 200
    url = f"{events_server.url}/api/2.0/events/properties/top"
    top = httpx.get(url, params={"event": "top-props", "limit": "3"}, auth=AUTH).json()
    assert top == {"color": {"count": 3}, "mp_lib": {"count": 3}, "size": {"count": 2}}
    everything = httpx.get(url, params={"event": "top-props", "limit": "100"}, auth=AUTH).json()
    assert set(everything) == {"color", "mp_lib", "size"}
    # they are still there for filters and breakdowns
    values = httpx.get(
        f"{events_server.url}/api/2.0/events/properties/values",
        params={"event": "top-props", "name": "$mp_api_endpoint"},
        auth=AUTH,
    ).json()
    assert values == ["127.0.0.1"]
