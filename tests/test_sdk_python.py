"""The official PyPI `mixpanel` SDK (5.4.1), unmodified, pointed at the server with its own
`events_url` / `people_url` / `groups_url` / `import_url` options (docs/clients.md).

The SDK posts `data=<raw JSON>&verbose=1&ip=0` as a form and raises MixpanelException unless the
reply is JSON with `"status": 1`, so every call that returns proves the server answered it right."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import mixpanel
import orjson
import pytest
from mixpanel import BufferedConsumer, Consumer, Mixpanel, MixpanelException, ServiceAccountCredentials

from mixhouse.catalog import Catalog
from mixhouse.domain.project import IdMerge
from mixhouse.engine.duckdb import DuckDBEngine
from tests.conftest import export
from tests.server import API_KEY, PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

JAN_1_2024 = 1704067200


def urls(server: ServerProcess) -> dict[str, str]:
    base = server.url
    return {
        "events_url": f"{base}/track",
        "people_url": f"{base}/engage",
        "groups_url": f"{base}/groups",
        "import_url": f"{base}/import",
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def exported(server: ServerProcess, *names: str, **params: str) -> list[dict[str, Any]]:
    return export(server.url, event=orjson.dumps(list(names)).decode(), **params)


def stopped_engine(server: ServerProcess) -> DuckDBEngine:
    server.stop()
    return DuckDBEngine(server.data_dir)


def test_track(server: ServerProcess) -> None:
    name = unique("sdk-track")
    mp = Mixpanel(TOKEN, consumer=Consumer(request_timeout=10, **urls(server)))
    before = time.time()
    mp.track("sdk-user", name, {"plan": "pro", "seats": 3, "when": datetime(2024, 1, 1, 12, 0, 0)})
    [row] = exported(server, name)
    props = row["properties"]
    assert row["event"] == name
    assert props["distinct_id"] == "sdk-user"
    assert (props["plan"], props["seats"], props["when"]) == ("pro", 3, "2024-01-01T12:00:00")
    assert (props["mp_lib"], props["$lib_version"]) == ("python", "5.4.1")
    assert len(props["$insert_id"]) == 32  # uuid4().hex
    assert int(before) <= props["time"] <= time.time()
    assert "$import" not in props
    assert "token" not in props


def test_track_with_insert_id_keeps_both_copies(server: ServerProcess) -> None:
    name = unique("sdk-insert-id")
    mp = Mixpanel(TOKEN, consumer=Consumer(**urls(server)))
    mp.track("sdk-user", name, {"$insert_id": "my-own-insert-id", "copy": 1})
    mp.track("sdk-user", name, {"$insert_id": "my-own-insert-id", "copy": 2})
    rows = exported(server, name)
    assert [r["properties"]["$insert_id"] for r in rows] == ["my-own-insert-id"] * 2
    assert sorted(r["properties"]["copy"] for r in rows) == [1, 2]


def test_import_with_api_secret(server: ServerProcess) -> None:
    name = unique("sdk-import-secret")
    mp = Mixpanel(TOKEN, consumer=Consumer(**urls(server)))
    mp.import_data(API_KEY, "old-user", name, JAN_1_2024, {"x": 1}, api_secret=SECRET)
    mp.import_data(None, "old-user", name, JAN_1_2024 + 90, {"x": 2}, api_secret=SECRET)
    rows = exported(server, name)
    assert [(r["properties"]["time"], r["properties"]["x"]) for r in rows] == [(JAN_1_2024, 1), (JAN_1_2024 + 90, 2)]
    for row in rows:
        assert row["properties"]["$import"] is True
        assert row["properties"]["distinct_id"] == "old-user"
        assert row["properties"]["mp_lib"] == "python"
        assert "api_key" not in row["properties"]


def test_import_with_service_account_credentials(server: ServerProcess) -> None:
    name = unique("sdk-import-sa")
    credentials = ServiceAccountCredentials(SA_USER, SA_SECRET, str(PROJECT_ID))
    mp = Mixpanel(TOKEN, consumer=Consumer(credentials=credentials, **urls(server)))
    mp.import_data(None, "sa-user", name, JAN_1_2024 + 3600, {"via": "service account"})
    [row] = exported(server, name, time_in_ms="true")
    assert row["properties"]["time"] == (JAN_1_2024 + 3600) * 1000
    assert row["properties"]["$import"] is True
    assert row["properties"]["via"] == "service account"


def test_import_with_wrong_credentials_raises(server: ServerProcess) -> None:
    name = unique("sdk-import-denied")
    mp = Mixpanel(TOKEN, consumer=Consumer(**urls(server)))
    with pytest.raises(MixpanelException, match="Mixpanel error"):
        mp.import_data(API_KEY, "u", name, JAN_1_2024, api_secret="not-the-secret")
    wrong_sa = ServiceAccountCredentials(SA_USER, "wrong", str(PROJECT_ID))
    sa_mp = Mixpanel(TOKEN, consumer=Consumer(credentials=wrong_sa, **urls(server)))
    with pytest.raises(MixpanelException, match="Mixpanel error"):
        sa_mp.import_data(None, "u", name, JAN_1_2024)
    assert exported(server, name) == []


def test_import_of_an_invalid_event_raises(server: ServerProcess) -> None:
    name = unique("sdk-import-future")
    mp = Mixpanel(TOKEN, consumer=Consumer(**urls(server)))
    # The SDK shows the envelope's `error`; the per-record reason is in failed_records.
    with pytest.raises(MixpanelException, match="some data points in the request failed validation"):
        mp.import_data(None, "u", name, int(time.time()) + 86400, api_secret=SECRET)
    assert exported(server, name) == []


def test_merge_is_refused_by_a_simplified_project(server: ServerProcess) -> None:
    mp = Mixpanel(TOKEN, consumer=Consumer(**urls(server)))
    with pytest.raises(MixpanelException, match="failed validation"):
        mp.merge(API_KEY, "merge-a", "merge-b", api_secret=SECRET)


@pytest.fixture
def local_default_consumer(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`alias()` always builds a default Consumer aimed at api.mixpanel.com: point every Consumer here."""
    original = mixpanel.Consumer.__init__

    def local_init(self: Consumer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._endpoints = {k: v.replace("https://api.mixpanel.com", server.url) for k, v in self._endpoints.items()}

    monkeypatch.setattr(mixpanel.Consumer, "__init__", local_init)
    yield


@pytest.mark.usefixtures("local_default_consumer")
def test_alias_through_the_default_consumer(server: ServerProcess) -> None:
    mp = Mixpanel(TOKEN, consumer=Consumer(**urls(server)))
    mp.alias("alias-new-id", "alias-original")  # raises unless the server answered {"status": 1}


def test_people_and_group_operations_reach_profiles(fresh_server: ServerProcess) -> None:
    mp = Mixpanel(TOKEN, consumer=Consumer(**urls(fresh_server)))
    mp.people_set("person", {"$email": "a@b.c", "plan": "free"})
    mp.people_set("person", {"plan": "pro"})
    mp.people_set_once("person", {"plan": "never", "first": "yes"})
    mp.people_increment("person", {"logins": 2})
    mp.people_increment("person", {"logins": 3})
    mp.people_append("person", {"pages": "home"})
    mp.people_append("person", {"pages": "pricing"})
    mp.people_union("person", {"tags": ["a", "b"]})
    mp.people_union("person", {"tags": ["b", "c"]})
    mp.people_remove("person", {"tags": "a"})
    mp.people_unset("person", ["first"])
    mp.people_set("deleted", {"x": 1})
    mp.people_delete("deleted")
    mp.group_set("company", "acme", {"size": 10, "tier": "gold"})
    mp.group_union("company", "acme", {"regions": ["eu", "us"]})
    mp.group_unset("company", "acme", ["tier"])
    engine = stopped_engine(fresh_server)
    try:
        person = engine.profile(PROJECT_ID, "person")
        assert person is not None
        assert isinstance(person.pop("$last_seen"), str)
        assert person == {
            "$email": "a@b.c",
            "plan": "pro",
            "logins": 5,
            "pages": ["home", "pricing"],
            "tags": ["b", "c"],
        }
        assert engine.profile(PROJECT_ID, "deleted") is None
        assert engine.group_profile(PROJECT_ID, "company", "acme") == {"size": 10, "regions": ["eu", "us"]}
    finally:
        engine.close()


def test_buffered_consumer_flushes_events_and_people_updates(fresh_server: ServerProcess) -> None:
    name = unique("sdk-buffered")
    consumer = BufferedConsumer(max_size=4, **urls(fresh_server))
    mp = Mixpanel(TOKEN, consumer=consumer)
    for i in range(6):  # the 4th send flushes a batch of 4 by itself
        mp.track(f"buf-{i % 2}", name, {"i": i})
    for i in range(3):
        mp.people_set(f"buf-{i}", {"n": i})
    mp.people_increment("buf-0", {"n": 10})
    assert sorted(r["properties"]["i"] for r in exported(fresh_server, name)) == [0, 1, 2, 3]
    consumer.flush()
    rows = exported(fresh_server, name)
    assert sorted(r["properties"]["i"] for r in rows) == [0, 1, 2, 3, 4, 5]
    assert {r["properties"]["distinct_id"] for r in rows} == {"buf-0", "buf-1"}
    engine = stopped_engine(fresh_server)
    try:
        found = {d: engine.profile(PROJECT_ID, d) for d in ("buf-0", "buf-1", "buf-2")}
    finally:
        engine.close()
    assert {d: p["n"] for d, p in found.items() if p is not None} == {"buf-0": 10, "buf-1": 1, "buf-2": 2}


def test_buffered_consumer_imports(server: ServerProcess) -> None:
    name = unique("sdk-buffered-import")
    credentials = ServiceAccountCredentials(SA_USER, SA_SECRET, str(PROJECT_ID))
    consumer = BufferedConsumer(max_size=50, credentials=credentials, **urls(server))
    mp = Mixpanel(TOKEN, consumer=consumer)
    for i in range(5):
        mp.import_data(None, "bulk", name, JAN_1_2024 + i, {"i": i})
    assert exported(server, name) == []
    consumer.flush()
    rows = exported(server, name)
    assert [r["properties"]["i"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(r["properties"]["$import"] is True for r in rows)


def test_merge_without_time_merges_in_an_original_id_merge_project(server: ServerProcess) -> None:
    # The SDK's merge() sends {"$distinct_ids": [a, b], "token": ...} and no time (nor an $insert_id).
    project_id, token, secret = 5151, "ORIGINAL-MERGE-TOKEN", "ORIGINAL-MERGE-SECRET"
    Catalog(server.data_dir).create_project(
        project_id=project_id, token=token, secret=secret, api_key="ORIGINAL-MERGE-KEY", id_merge=IdMerge.ORIGINAL
    )
    mp = Mixpanel(token, consumer=Consumer(**urls(server)))
    for distinct_id in ("merge-left", "merge-right"):
        mp.import_data(None, distinct_id, "Merged Visit", JAN_1_2024 + 3600, api_secret=secret)

    def uniques() -> int:
        response = httpx.get(
            f"{server.url}/api/query/segmentation",
            params={"event": "Merged Visit", "from_date": "2024-01-01", "to_date": "2024-01-01", "type": "unique"},
            auth=(secret, ""),
        )
        assert response.status_code == 200, response.text
        return int(response.json()["data"]["values"]["Merged Visit"]["2024-01-01"])

    assert uniques() == 2
    before = time.time()
    mp.merge(None, "merge-left", "merge-right", api_secret=secret)
    assert uniques() == 1
    [merge] = export(server.url, project_id=project_id, auth=(secret, ""), event='["$merge"]')
    assert int(before) <= merge["properties"]["time"] <= time.time()
    assert merge["properties"]["$distinct_ids"] == ["merge-left", "merge-right"]
