"""Pipelines to Google Cloud Storage and Azure Blob Storage (docs/pipelines.md): a real mixhouse server
writes through gcsfs to fake-gcs-server and through adlfs to Azurite, both child processes on loopback.
One server, one import of events on a fixed past day; each test cancels its pipeline (a project may have
one bounded pipeline at a time)."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from tests.objectstores import AZURE_ACCOUNT, AZURE_KEY, AzureServer, GcsServer
from tests.server import PROJECT_ID, TOKEN, ServerProcess, seed_catalog
from tests.test_pipelines import BASE, SA, _create, _event, _get, _import, _server, _wait_for

DAY = "2024-05-01"
BUCKET = "lake"
EVENTS = [
    _event("Visit", "2024-04-30", 86399, "u0", "before"),
    _event("Visit", DAY, 0, "u1", "first", plan="free"),
    _event("Buy", DAY, 3600, "u2", "second", price=9.5, tags=["a", "b"]),
    _event("Visit", DAY, 86399, "u1", "last"),
    _event("Visit", "2024-05-02", 0, "u3", "after"),
]


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    server = GcsServer(tmp_path_factory.mktemp("gcs") / "gcs.log").start()
    server.fs().mkdir(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    server = AzureServer(tmp_path_factory.mktemp("azurite") / "azurite.log").start()
    server.fs().mkdir(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mixhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("pipelines-stores") / "data"
    seed_catalog(data_dir)
    server = _server(data_dir, AZURE_STORAGE_ACCOUNT_KEY=AZURE_KEY).start()
    _import(server.url, EVENTS)
    yield server
    server.stop()


def _exported(url: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{url}/api/2.0/export", params={"project_id": str(PROJECT_ID), "from_date": DAY, "to_date": DAY}, auth=SA
    )
    assert r.status_code == 200, r.text
    return [orjson.loads(line) for line in r.content.splitlines()]


def _cancel(url: str, name: str) -> None:
    r = httpx.post(f"{url}{BASE}/cancel", data={"project_id": str(PROJECT_ID), "name": name}, auth=SA, timeout=30)
    assert r.json() == {"status": "ok"}, r.text


def _files(fs: Any, path: str) -> list[str]:
    return sorted(fs.find(path)) if fs.exists(path) else []


def test_a_raw_pipeline_exports_a_day_to_gcs_in_mixpanels_layout(gcs: GcsServer, mixhouse: ServerProcess) -> None:
    params = {"type": "gcs-raw", "gcs_bucket": BUCKET, "gcs_prefix": "raw", "gcs_region": "us-central1"}
    r = _create(mixhouse.url, **params, gcs_endpoint_url=gcs.url, from_date=DAY, to_date=DAY)
    assert r.json() == {"pipeline_names": ["events-daily-gcs-raw"]}, r.text
    fs = gcs.fs()
    folder = f"{BUCKET}/raw/{PROJECT_ID}/2024/05/01/full_day"
    try:
        _wait_for(lambda: fs.invalidate_cache() or fs.exists(f"{folder}/complete"))
        assert _files(fs, f"{BUCKET}/raw/{PROJECT_ID}") == [f"{folder}/complete", f"{folder}/export-part-00000.json.gz"]
        lines = [
            orjson.loads(x) for x in gzip.decompress(fs.cat_file(f"{folder}/export-part-00000.json.gz")).splitlines()
        ]
        assert lines == _exported(mixhouse.url)  # the lines /export gives for the day
        assert [e["properties"]["$insert_id"] for e in lines] == ["first", "second", "last"]
        status = _get(mixhouse.url, "status", name="events-daily-gcs-raw")
        assert [(t["state"], t["events"], t["files"]) for t in status["succeeded"]] == [("succeeded", 3, 1)]
    finally:
        _cancel(mixhouse.url, "events-daily-gcs-raw")


def test_a_schematized_pipeline_writes_parquet_to_azure_blob(azure: AzureServer, mixhouse: ServerProcess) -> None:
    # Azure's parameters under both spellings this server takes: storage_account/container_name here.
    params = {"type": "azure-blob", "storage_account": AZURE_ACCOUNT, "container_name": BUCKET, "azure_prefix": "pq"}
    r = _create(mixhouse.url, **params, azure_endpoint_url=azure.endpoint, from_date=DAY, to_date=DAY)
    assert r.json() == {"pipeline_names": ["events-daily-azure-blob-monoschema"]}, r.text
    fs = azure.fs()
    folder = f"{BUCKET}/pq/{PROJECT_ID}/2024/05/01/full_day"
    try:
        _wait_for(lambda: fs.invalidate_cache() or fs.exists(f"{folder}/complete"))
        part = f"{folder}/mp_master_event/part-00000.parquet"
        schema = f"{BUCKET}/pq/{PROJECT_ID}/schema/events.json"
        assert _files(fs, f"{BUCKET}/pq/{PROJECT_ID}") == [f"{folder}/complete", part, schema]
        table = pq.read_table(io.BytesIO(fs.cat_file(part))).to_pylist()
        assert [(row["mp_event_name"], row["distinct_id"], row["mp_insert_id"]) for row in table] == [
            ("Visit", "u1", "first"),
            ("Buy", "u2", "second"),
            ("Visit", "u1", "last"),
        ]
        assert table[1]["price"] == 9.5 and table[0]["plan"] == "free"
        mapping = orjson.loads(fs.cat_file(schema))
        assert set(mapping["events"]) == {"Visit", "Buy"}
        for verb in ("jobs", "status", "timeline"):  # the account key is never shown
            text = httpx.get(
                f"{mixhouse.url}{BASE}/{verb}",
                params={"project_id": str(PROJECT_ID), "name": "events-daily-azure-blob-monoschema"},
                auth=SA,
            ).text
            assert AZURE_KEY not in text and AZURE_KEY[:20] not in text
    finally:
        _cancel(mixhouse.url, "events-daily-azure-blob-monoschema")


def _set(url: str, distinct_id: str, **props: Any) -> None:
    profile = {"$token": TOKEN, "$distinct_id": distinct_id, "$set": props}
    r = httpx.post(f"{url}/engage", data={"data": orjson.dumps([profile]).decode()}, timeout=30)
    assert r.text == "1", r.text


def test_a_people_pipeline_writes_mp_people_data_and_replaces_it_when_profiles_change(
    gcs: GcsServer, mixhouse: ServerProcess
) -> None:
    _set(mixhouse.url, "u1", plan="free", **{"$email": "u1@example.com"})
    _set(mixhouse.url, "u2", plan="paid", seats=3)
    # a device of u1's (Simplified ID Merge), a month before the events of the other tests
    _import(mixhouse.url, [_event("Log In", "2024-04-01", 0, "u1", "link", **{"$device_id": "d9", "$user_id": "u1"})])
    # A recurring people pipeline from a past day starts at yesterday: profiles have no past to backfill.
    params = {"type": "gcs-schema", "data_source": "people", "gcs_bucket": BUCKET, "gcs_prefix": "people"}
    r = _create(mixhouse.url, **params, gcs_endpoint_url=gcs.url, from_date=DAY)
    assert r.json() == {"pipeline_names": ["people-daily-gcs-schema"]}, r.text
    fs = gcs.fs()
    folder = f"{BUCKET}/people/{PROJECT_ID}/mp_people_data"

    def profiles() -> dict[str, dict[str, Any]]:
        fs.invalidate_cache()
        if not fs.exists(f"{folder}/complete"):
            return {}
        rows = pq.read_table(io.BytesIO(fs.cat_file(f"{folder}/part-00000.parquet"))).to_pylist()
        return {row["distinct_id"]: row for row in rows}

    ids = f"{BUCKET}/people/{PROJECT_ID}/mp_identity_mappings_data"
    try:
        first = _wait_for(lambda: fs.invalidate_cache() or (fs.exists(f"{ids}/complete") and profiles()))
        assert sorted(first) == ["u1", "u2"]
        assert (first["u1"]["plan"], first["u1"]["mp_email"], first["u2"]["seats"]) == ("free", "u1@example.com", 3.0)
        assert _files(fs, f"{BUCKET}/people/{PROJECT_ID}") == [
            f"{ids}/complete",
            f"{ids}/part-00000.parquet",
            f"{folder}/complete",
            f"{folder}/part-00000.parquet",
            f"{BUCKET}/people/{PROJECT_ID}/schema/identities.json",
            f"{BUCKET}/people/{PROJECT_ID}/schema/people.json",
        ]
        mappings = pq.read_table(io.BytesIO(fs.cat_file(f"{ids}/part-00000.parquet"))).to_pylist()
        assert [m for m in mappings if m["resolved_distinct_id"] == "u1"] == [
            {"distinct_id": "$device:d9", "resolved_distinct_id": "u1"},
            {"distinct_id": "u1", "resolved_distinct_id": "u1"},
        ]
        mapping = orjson.loads(fs.cat_file(f"{BUCKET}/people/{PROJECT_ID}/schema/people.json"))
        assert mapping["tables"]["mp_people_data"]["$email:string"] == "mp_email"
        status = _get(mixhouse.url, "status", name="people-daily-gcs-schema")
        assert status["succeeded"][0]["events"] == 2  # rows written: profiles here
        assert status["succeeded"][0]["files"] == 2  # a part of each table
        # a profile changes: sync exports the table again, replaced, not appended to
        _set(mixhouse.url, "u1", plan="paid")
        _wait_for(lambda: profiles().get("u1", {}).get("plan") == "paid", what="the people re-export")
        assert sorted(profiles()) == ["u1", "u2"]
    finally:
        _cancel(mixhouse.url, "people-daily-gcs-schema")


def test_a_people_pipeline_writes_the_identity_mappings_to_azure_blob(
    azure: AzureServer, mixhouse: ServerProcess
) -> None:
    _import(mixhouse.url, [_event("Log In", "2024-04-02", 0, "u5", "link5", **{"$device_id": "d5", "$user_id": "u5"})])
    params = {"type": "azure-blob", "data_source": "people", "azure_account_name": AZURE_ACCOUNT}
    r = _create(mixhouse.url, **params, azure_container_name=BUCKET, azure_prefix="ids",
                azure_endpoint_url=azure.endpoint, from_date=DAY)  # fmt: skip
    assert r.json() == {"pipeline_names": ["people-daily-azure-blob"]}, r.text
    fs = azure.fs()
    folder = f"{BUCKET}/ids/{PROJECT_ID}/mp_identity_mappings_data"
    try:
        _wait_for(lambda: fs.invalidate_cache() or fs.exists(f"{folder}/complete"))
        rows = pq.read_table(io.BytesIO(fs.cat_file(f"{folder}/part-00000.parquet"))).to_pylist()
        assert {"distinct_id": "$device:d5", "resolved_distinct_id": "u5"} in rows
        assert fs.exists(f"{BUCKET}/ids/{PROJECT_ID}/schema/identities.json")
    finally:
        _cancel(mixhouse.url, "people-daily-azure-blob")


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"type": "gcs-raw", "from_date": DAY}, "gcs_bucket"),
        ({"type": "gcs-raw", "gcs_bucket": BUCKET, "from_date": DAY, "data_source": "people"}, "events only"),
        ({"type": "gcs-schema", "gcs_bucket": BUCKET, "from_date": DAY, "data_source": "people", "events": "A"},
         "every profile"),
        ({"type": "aws", "s3_bucket": BUCKET, "from_date": DAY, "data_source": "people", "schema_type": "multischema"},
         "mp_people_data"),
        ({"type": "gcs-raw", "gcs_bucket": "a b", "from_date": DAY}, "not a bucket name"),
        ({"type": "gcs-schema", "gcs_bucket": BUCKET, "from_date": DAY, "gcs_endpoint_url": "ftp://x"}, "URL"),
        ({"type": "azure-raw", "azure_container_name": BUCKET, "from_date": DAY}, "azure_account_name"),
        ({"type": "azure-raw", "storage_account": "acct", "from_date": DAY}, "azure_container_name"),
        (
            {"type": "azure-blob", "azure_account_name": "a", "azure_container_name": BUCKET, "from_date": DAY,
             "azure_endpoint_url": "localhost:10000"},
            "azure_endpoint_url must be an http(s) URL",
        ),
    ],
)  # fmt: skip
def test_bad_gcs_and_azure_destinations_get_mixpanel_errors(
    mixhouse: ServerProcess, params: dict[str, str], says: str
) -> None:
    r = _create(mixhouse.url, **params)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "error" and says in r.json()["error"]
