"""Data pipelines (docs/pipelines.md): a real server exporting to a real S3-compatible server (moto's
server mode, a child process on loopback), and to a local folder; crash and restart; sync after late data
and a GDPR deletion; Mixpanel-format errors. Dates are fixed in the past (the backfill limit is raised
for these servers), so the tests pass at any hour."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from mixhouse.domain.project import Role
from mixhouse.errors import BadRequest
from mixhouse.pipelines.files import Schematizer, clean_name
from mixhouse.pipelines.model import Limits, PipelineSpec, Unit, due_units, parse_create
from tests.s3server import KEY, S3Server
from tests.s3server import SECRET as S3_SECRET
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

BASE = "/api/2.0/nessie/pipeline"
BUCKET = "lake"
SA = (SA_USER, SA_SECRET)


# -- the S3 server --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free loopback port, with an empty bucket; its URL."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log").start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server.url
    server.stop()


def _client(url: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=S3_SECRET, region_name="us-east-1"
    )


def _keys(url: str, prefix: str) -> list[str]:
    found: list[str] = []
    for page in _client(url).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        found += [o["Key"] for o in page.get("Contents", [])]
    return sorted(found)


def _lines(url: str, key: str) -> list[dict[str, Any]]:
    body = _client(url).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [orjson.loads(line) for line in gzip.decompress(body).splitlines() if line]


def _wait_for(check: Any, timeout: float = 90, what: str = "the export") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.1)


# -- the mixhouse server -----------------------------------------------------------------------------------


def _server(data_dir: Path, **env: str) -> ServerProcess:
    settings = {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "MIXHOUSE_PIPELINE_TICK_SECONDS": "0.2",
        "MIXHOUSE_PIPELINE_MAX_BACKFILL_DAYS": "100000",
        "MIXHOUSE_PIPELINE_SYNC_DAYS": "100000",
        "MIXHOUSE_PIPELINE_SYNC_INTERVAL_SECONDS": "0.5",
        **env,
    }
    return ServerProcess(data_dir, env=settings)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    seed_catalog(path)
    return path


def _import(url: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 2000):
        r = httpx.post(f"{url}/import?strict=1", json=events[start : start + 2000], auth=(SECRET, ""), timeout=60)
        assert r.status_code == 200, r.text


def _create(url: str, **params: str) -> httpx.Response:
    return httpx.post(f"{url}{BASE}/create", data={"project_id": str(PROJECT_ID), **params}, auth=SA, timeout=30)


def _s3_params(s3: str, prefix: str) -> dict[str, str]:
    return {
        "type": "s3-raw",
        "s3_bucket": BUCKET,
        "s3_region": "us-east-1",
        "s3_prefix": prefix,
        "s3_endpoint_url": s3,
    }


def _get(url: str, verb: str, **params: str) -> Any:
    r = httpx.get(f"{url}{BASE}/{verb}", params={"project_id": str(PROJECT_ID), **params}, auth=SA, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _ts(day: str, seconds: int = 0) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) + seconds


def _event(name: str, day: str, second: int, distinct_id: str, insert_id: str, **props: Any) -> dict[str, Any]:
    properties = {"time": _ts(day, second), "distinct_id": distinct_id, "$insert_id": insert_id, **props}
    return {"event": name, "properties": properties}


# -- exports to S3 ---------------------------------------------------------------------------------------


def test_a_raw_pipeline_exports_a_day_to_s3_in_mixpanels_layout(s3: str, data_dir: Path) -> None:
    day = "2024-05-01"
    events = [
        _event("Visit", "2024-04-30", 86399, "u0", "before"),  # the day before: not this day's
        _event("Visit", day, 0, "u1", "first", plan="free"),
        _event("Buy", day, 3600, "u2", "second", price=9.5, tags=["a", "b"]),
        _event("Visit", day, 86399, "u1", "last"),
        _event("Visit", "2024-05-02", 0, "u3", "after"),
    ]
    server = _server(data_dir).start()
    try:
        _import(server.url, events)
        r = _create(server.url, **_s3_params(s3, "raw/one"), from_date=day, to_date=day)
        assert r.status_code == 200, r.text
        assert r.json() == {"pipeline_names": ["events-daily-s3-raw"]}
        folder = f"raw/one/{PROJECT_ID}/2024/05/01/full_day"
        _wait_for(lambda: f"{folder}/complete" in _keys(s3, folder))
        assert _keys(s3, f"raw/one/{PROJECT_ID}/") == [f"{folder}/complete", f"{folder}/export-part-00000.json.gz"]
        lines = _lines(s3, f"{folder}/export-part-00000.json.gz")
        exported = httpx.get(
            f"{server.url}/api/2.0/export",
            params={"project_id": str(PROJECT_ID), "from_date": day, "to_date": day},
            auth=SA,
            timeout=30,
        )
        assert lines == [orjson.loads(line) for line in exported.content.splitlines()]  # as /export writes them
        assert [e["properties"]["$insert_id"] for e in lines] == ["first", "second", "last"]
        assert lines[1]["event"] == "Buy"
        sent = {"time": _ts(day, 3600), "distinct_id": "u2", "$insert_id": "second", "price": 9.5, "tags": ["a", "b"]}
        assert list(lines[1]["properties"])[:2] == ["time", "distinct_id"]
        assert {k: lines[1]["properties"][k] for k in sent} == sent
        name = "events-daily-s3-raw"
        status = _get(server.url, "status", name=name)
        assert [t["state"] for t in status["succeeded"]] == ["succeeded"]
        assert status["succeeded"][0]["from_date"] == "2024-05-01T00:00:00"
        assert status["succeeded"][0]["events"] == 3
        assert _get(server.url, "status", name=name, summary="true") == {"succeeded": 1}
        assert _get(server.url, "status", name=name, status="failed") == {}
        timeline = _get(server.url, "timeline", name=name)["day_syncs"]
        assert [(d["date"], d["status"], len(d["sync_times"])) for d in timeline] == [(day, "synced", 1)]
        jobs = _get(server.url, "jobs")[str(PROJECT_ID)]
        assert [(j["name"], j["frequency"], j["sync_enabled"]) for j in jobs] == [(name, "daily", "false")]
        assert jobs[0]["last_dispatched"].endswith(" UTC")
        for verb in ("jobs", "status", "timeline"):  # the server's S3 credentials are never shown
            text = httpx.get(
                f"{server.url}{BASE}/{verb}", params={"project_id": str(PROJECT_ID), "name": name}, auth=SA
            ).text
            assert S3_SECRET not in text and KEY not in text
    finally:
        server.stop()


def test_a_kill_mid_export_and_a_restart_finish_it_with_no_duplicate_and_no_loss(s3: str, data_dir: Path) -> None:
    small, big = "2024-05-01", "2024-05-02"
    events = [_event("Tiny", small, i, f"s{i}", f"small-{i}") for i in range(10)]
    events += [_event("Bulk", big, i % 86400, f"u{i % 997}", f"big-{i}", n=i) for i in range(40_000)]
    env = {"MIXHOUSE_PIPELINE_FILE_ROWS": "200"}
    server = _server(data_dir, **env).start()
    prefix = f"raw/crash/{PROJECT_ID}/2024/05"
    try:
        _import(server.url, events)
        r = _create(server.url, **_s3_params(s3, "raw/crash"), from_date=small, to_date=big)
        assert r.status_code == 200, r.text
        # The first day finishes; the second is killed with some of its parts written and no `complete`.
        _wait_for(lambda: any(k.endswith("/02/full_day/export-part-00003.json.gz") for k in _keys(s3, prefix)))
        server.kill()
        keys = _keys(s3, prefix)
        assert f"{prefix}/01/full_day/complete" in keys and f"{prefix}/02/full_day/complete" not in keys
    finally:
        server.kill()
    server = _server(data_dir, **env).start()
    try:
        _wait_for(lambda: f"{prefix}/02/full_day/complete" in _keys(s3, prefix))
        parts = [k for k in _keys(s3, f"{prefix}/02/full_day/") if not k.endswith("/complete")]
        assert parts == [f"{prefix}/02/full_day/export-part-{i:05d}.json.gz" for i in range(200)]
        seen = [e["properties"]["$insert_id"] for k in parts for e in _lines(s3, k)]
        assert len(seen) == len(set(seen)) == 40_000  # no event twice, none missing
        assert set(seen) == {f"big-{i}" for i in range(40_000)}
        # The day finished before the crash was not exported again: one sync time, the first export's.
        timeline = _get(server.url, "timeline", name="events-daily-s3-raw")["day_syncs"]
        assert [(d["date"], len(d["sync_times"]), d["status"]) for d in timeline] == [
            (small, 1, "synced"),
            (big, 1, "synced"),
        ]
        status = _get(server.url, "status", name="events-daily-s3-raw")
        assert sorted(t["from_date"][:10] for t in status["succeeded"]) == [small, big]
    finally:
        server.stop()


def test_sync_reexports_a_day_after_late_data_and_a_gdpr_deletion(s3: str, data_dir: Path) -> None:
    day = "2024-05-03"
    server = _server(data_dir).start()
    folder = f"raw/sync/{PROJECT_ID}/2024/05/03/full_day"
    part = f"{folder}/export-part-00000.json.gz"

    def ids() -> list[str]:
        keys = _keys(s3, folder)
        if f"{folder}/complete" not in keys:
            return []
        try:
            return [e["properties"]["$insert_id"] for e in _lines(s3, part)]
        except botocore.exceptions.ClientError:  # a re-export began between the listing and the read
            return []

    try:
        _import(server.url, [_event("Visit", day, 10, "alice", "a1"), _event("Visit", day, 20, "bob", "b1")])
        r = _create(server.url, **_s3_params(s3, "raw/sync"), from_date=day, to_date=day, sync="true")
        assert r.status_code == 200, r.text
        _wait_for(lambda: ids() == ["a1", "b1"])
        _import(server.url, [_event("Visit", day, 30, "alice", "a2")])  # late data
        _wait_for(lambda: ids() == ["a1", "b1", "a2"], what="the sync of late data")
        deletion = httpx.post(
            f"{server.url}/api/app/data-deletions/v3.0",
            params={"project_id": str(PROJECT_ID)},
            json={"distinct_ids": ["alice"], "compliance_type": "GDPR"},
            auth=SA,
            timeout=30,
        )
        assert deletion.status_code in (200, 201), deletion.text
        _wait_for(lambda: ids() == ["b1"], what="the sync of the deletion")
        timeline = _get(server.url, "timeline", name="events-daily-s3-raw")["day_syncs"]
        assert timeline[0]["date"] == day and len(timeline[0]["sync_times"]) == 3
        assert _get(server.url, "jobs")[str(PROJECT_ID)][0]["sync_enabled"] == "true"
    finally:
        server.stop()


# -- local folders, hourly, schematized -----------------------------------------------------------------------


@pytest.mark.clock
def test_hourly_and_schematized_pipelines_write_to_a_local_folder(tmp_path: Path, data_dir: Path) -> None:
    lake = tmp_path / "lake"
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    day = "2024-05-04"
    events = [
        _event("Sign Up", day, 100, "u1", "s1", **{"$browser": "Chrome", "Plan": "free", "plan": "x"}),
        _event("Sign Up", day, 200, "u2", "s2", Plan=3),
        _event("Purchase", day, 300, "u1", "p1", amount=12.5, paid=True),
        _event("Visit", yesterday, 10 * 3600 + 5, "u1", "h1"),
    ]
    server = _server(data_dir, MIXHOUSE_PIPELINE_LOCAL_DIR=str(lake)).start()
    try:
        _import(server.url, events)
        hourly = _create(server.url, type="s3-raw", local_prefix="hourly", from_date=yesterday, frequency="hourly")
        assert hourly.json() == {"pipeline_names": ["events-hourly-s3-raw"]}, hourly.text
        multi = _create(
            server.url, type="aws", local_prefix="tables", from_date=day, to_date=day, schema_type="multischema"
        )
        assert multi.json() == {"pipeline_names": ["events-daily-aws-multischema"]}, multi.text
        y = date.fromisoformat(yesterday)
        hour_dir = lake / "hourly" / str(PROJECT_ID) / f"{y.year:04d}/{y.month:02d}/{y.day:02d}"
        _wait_for(lambda: all((hour_dir / f"{h:02d}" / "complete").exists() for h in range(24)), what="24 hours")
        assert sorted(p.name for p in (hour_dir / "10").iterdir()) == ["complete", "export-part-00000.json.gz"]
        assert sorted(p.name for p in (hour_dir / "09").iterdir()) == ["complete"]  # an empty hour: done, no file
        line = orjson.loads(gzip.decompress((hour_dir / "10" / "export-part-00000.json.gz").read_bytes()))
        assert line["properties"]["$insert_id"] == "h1"

        day_dir = lake / "tables" / str(PROJECT_ID) / "2024/05/04/full_day"
        _wait_for(lambda: (day_dir / "complete").exists())
        table = pq.read_table(day_dir / "sign_up" / "part-00000.parquet")
        assert "mp_mp_api_endpoint" in table.column_names  # $mp_api_endpoint, added at ingestion
        wanted = ["time", "distinct_id", "mp_insert_id", "mp_browser", "plan", "plan_1", "plan_number"]
        signup = table.select(wanted).to_pylist()
        assert signup == [
            {"time": _ts(day, 100), "distinct_id": "u1", "mp_insert_id": "s1", "mp_browser": "Chrome",
             "plan": "free", "plan_1": "x", "plan_number": None},
            {"time": _ts(day, 200), "distinct_id": "u2", "mp_insert_id": "s2", "mp_browser": None,
             "plan": None, "plan_1": None, "plan_number": 3.0},
        ]  # fmt: skip
        purchase = pq.read_table(day_dir / "purchase" / "part-00000.parquet")
        assert purchase.column_names[:3] == ["time", "distinct_id", "mp_insert_id"]
        assert purchase.select(["amount", "paid"]).to_pylist() == [{"amount": 12.5, "paid": True}]
        mapping = orjson.loads((lake / "tables" / str(PROJECT_ID) / "schema" / "events.json").read_bytes())
        assert mapping["events"] == {"Purchase": "purchase", "Sign Up": "sign_up"}
        assert mapping["tables"]["sign_up"]["Plan:number"] == "plan_number"
    finally:
        server.stop()


def test_schematized_monoschema_puts_every_event_in_one_table() -> None:
    import pyarrow as pa

    from mixhouse.domain.scan import EVENT_SCHEMA

    batch = pa.RecordBatch.from_pylist(
        [
            {"name": "A", "distinct_id": "u", "time": 1000, "insert_id": "1", "properties": '{"$os":"x","n":1}'},
            {"name": "B", "distinct_id": "v", "time": 2000, "insert_id": "2", "properties": '{"o":{"k":1}}'},
        ],
        schema=EVENT_SCHEMA,
    )
    schema = Schematizer("monoschema")
    schema.add(batch)
    files = dict(schema.parquet_files(1))
    assert sorted(files) == ["mp_master_event/part-00000.parquet", "mp_master_event/part-00001.parquet"]
    table = pa.concat_tables(pq.read_table(pa.BufferReader(files[k])) for k in sorted(files))
    assert table.to_pylist() == [
        {"time": 1, "distinct_id": "u", "mp_event_name": "A", "mp_insert_id": "1", "mp_os": "x", "n": 1.0, "o": None},
        {"time": 2, "distinct_id": "v", "mp_event_name": "B", "mp_insert_id": "2", "mp_os": None, "n": None,
         "o": '{"k":1}'},
    ]  # fmt: skip
    assert clean_name("$Current URL") == "mp_current_url"
    assert clean_name("select") == "res_select"
    assert clean_name("x" * 200) == "x" * 128


# -- scheduling rules -----------------------------------------------------------------------------------------


def _spec(**overrides: Any) -> PipelineSpec:
    params = {"type": "s3-raw", "s3_bucket": "bkt", "from_date": "2024-03-09", **overrides}
    return parse_create(params, [], "America/New_York", date(2024, 3, 12), Limits())


def test_units_are_days_and_hours_of_the_project_timezone() -> None:
    daily = _spec(to_date="2024-03-11")
    now = datetime(2024, 3, 11, 12, tzinfo=UTC)  # 08:00 in New York: the 11th has not ended
    assert due_units(daily, now, "America/New_York") == [Unit(date(2024, 3, 9)), Unit(date(2024, 3, 10))]
    # 2024-03-10 is 23 hours long in New York (DST starts): its day unit spans exactly that.
    start, end = Unit(date(2024, 3, 10)).bounds_ms("America/New_York")
    assert end - start == 23 * 3_600_000
    hourly = _spec(frequency="hourly", from_date="2024-03-11")
    units = due_units(hourly, datetime(2024, 3, 11, 7, 30, tzinfo=UTC), "America/New_York")  # 03:30 local
    assert [u.key for u in units] == ["2024-03-11T00", "2024-03-11T01", "2024-03-11T02"]
    assert units[1].folder() == "2024/03/11/01"
    assert Unit(date(2024, 3, 9)).folder() == "2024/03/09/full_day"


def test_the_backfill_limit_at_its_edge() -> None:
    today = date(2024, 6, 30)
    limits = Limits(max_backfill_days=183)
    edge = (today - timedelta(days=183)).isoformat()
    past = (today - timedelta(days=184)).isoformat()
    base = {"type": "s3-raw", "s3_bucket": "bkt"}
    assert parse_create({**base, "from_date": edge}, [], "UTC", today, limits).from_date.isoformat() == edge
    with pytest.raises(BadRequest, match="more than 183 days in the past"):
        parse_create({**base, "from_date": past}, [], "UTC", today, limits)


def test_a_trial_pipeline_starts_yesterday_daily_without_filters() -> None:
    today = date(2024, 6, 30)
    spec = parse_create({"type": "s3-raw", "s3_bucket": "bkt", "trial": "true"}, [], "UTC", today, Limits())
    assert (spec.from_date, spec.frequency, spec.sync, spec.events) == (date(2024, 6, 29), "daily", False, None)
    assert spec.to_date is not None and (spec.to_date - spec.from_date).days + 1 == 30
    assert spec.base_name() == "trial-events-daily-s3-raw"
    with pytest.raises(BadRequest, match="cannot filter by event name"):
        parse_create({"type": "s3-raw", "s3_bucket": "bkt", "trial": "true", "events": "A"}, [], "UTC", today, Limits())


# -- bad input -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("pipelines-api") / "data"
    seed_catalog(data_dir)
    server = _server(data_dir, MIXHOUSE_PIPELINE_TICK_SECONDS="3600").start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({}, 400, "type"),
        ({"type": "ftp"}, 400, "type must be one of"),
        ({"type": "bigquery", "from_date": "2024-05-01"}, 400, "does not do"),
        ({"type": "s3-raw", "s3_bucket": BUCKET}, 400, "from_date"),
        ({"type": "s3-raw", "s3_bucket": BUCKET, "from_date": "05/01/2024"}, 400, "yyyy-mm-dd"),
        ({"type": "s3-raw", "s3_bucket": BUCKET, "from_date": "2024-05-02", "to_date": "2024-05-01"}, 400, "earlier"),
        ({"type": "s3-raw", "from_date": "2024-05-01"}, 400, "s3_bucket"),
        ({"type": "s3-raw", "s3_bucket": BUCKET, "from_date": "2024-05-01", "frequency": "weekly"}, 400, "frequency"),
        (
            {"type": "s3-raw", "s3_bucket": BUCKET, "from_date": "2024-05-01", "to_date": "2024-05-02",
             "frequency": "hourly"},
            400,
            "only be set for pipelines with no to_date",
        ),
        ({"type": "s3-raw", "s3_bucket": BUCKET, "from_date": "2024-05-01", "where": 'properties["a" =='}, 400, ""),
        ({"type": "aws", "s3_bucket": BUCKET, "from_date": "2024-05-01", "sync": "false"}, 400, "sync must be true"),
        ({"type": "s3-raw", "s3_bucket": BUCKET, "from_date": "2024-05-01", "s3_endpoint_url": "ftp://x"}, 400, "URL"),
        ({"type": "s3-raw", "s3_bucket": BUCKET, "from_date": "2024-05-01", "data_source": "people"}, 400, "events only"),
        ({"type": "s3-raw", "local_prefix": "x", "from_date": "2024-05-01"}, 400, "pipeline_local_dir"),
    ],
)  # fmt: skip
def test_bad_create_requests_get_mixpanel_errors(
    api_server: ServerProcess, params: dict[str, str], status: int, says: str
) -> None:
    r = _create(api_server.url, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error" and says in body["error"]


@pytest.mark.clock
def test_names_limits_credentials_and_unknown_pipelines(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir, project_id=77, token="T77", secret="S77", api_key="K77", sa_user="reader", role=Role.CONSUMER
    )
    lake = tmp_path / "lake"
    server = _server(data_dir, MIXHOUSE_PIPELINE_TICK_SECONDS="3600", MIXHOUSE_PIPELINE_LOCAL_DIR=str(lake)).start()
    try:
        url = server.url
        future = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()  # nothing is due: no export runs
        recurring = {"type": "s3-raw", "s3_bucket": BUCKET, "from_date": future}
        assert _create(url, **recurring).json() == {"pipeline_names": ["events-daily-s3-raw"]}
        assert _create(url, **recurring).json() == {"pipeline_names": ["events-daily-s3-raw-2"]}
        third = _create(url, **recurring)
        assert third.status_code == 400 and "at most 2 recurring" in third.json()["error"]
        assert _create(url, type="gcs-raw", local_prefix="trial", trial="true").json() == {
            "pipeline_names": ["trial-events-daily-gcs-raw"]
        }
        trial_day = lake / "trial" / str(PROJECT_ID)
        _wait_for(lambda: list(trial_day.glob("*/*/*/full_day/complete")), what="the trial's first day")
        assert "only one trial" in _create(url, type="s3-raw", s3_bucket="bkt", trial="true").json()["error"]
        # the project secret works too; a wrong one is a 401 in the same envelope
        r = httpx.get(f"{url}{BASE}/jobs", auth=(SECRET, ""), timeout=30)
        assert [j["name"] for j in r.json()[str(PROJECT_ID)]][:2] == ["events-daily-s3-raw", "events-daily-s3-raw-2"]
        r = httpx.get(f"{url}{BASE}/jobs", auth=("nope", ""), timeout=30)
        assert r.status_code == 401 and r.json()["status"] == "error"
        # a consumer may read, not create
        reader = httpx.post(f"{url}{BASE}/create", data={**recurring, "project_id": "77"}, auth=("reader", SA_SECRET))
        assert reader.status_code == 403 and reader.json()["status"] == "error"
        assert httpx.get(f"{url}{BASE}/jobs", params={"project_id": "77"}, auth=("reader", SA_SECRET)).json() == {
            "77": []
        }
        for verb in ("pause", "resume", "cancel", "edit"):
            r = httpx.post(f"{url}{BASE}/{verb}", data={"project_id": str(PROJECT_ID), "name": "nope"}, auth=SA)
            assert r.status_code == 404 and r.json()["status"] == "error", r.text
            r = httpx.post(f"{url}{BASE}/{verb}", data={"project_id": str(PROJECT_ID)}, auth=SA)
            assert r.status_code == 400 and "name" in r.json()["error"]
        r = httpx.get(f"{url}{BASE}/status", params={"project_id": str(PROJECT_ID), "name": "events-daily-s3-raw",
                                                    "status": "sleeping"}, auth=SA)  # fmt: skip
        assert r.status_code == 400 and "status must be one of" in r.json()["error"]
        wrong_method = httpx.get(f"{url}{BASE}/create", auth=SA)
        assert wrong_method.status_code == 405 and wrong_method.json()["status"] == "error"
        # pause, edit, resume, cancel
        name = {"project_id": str(PROJECT_ID), "name": "events-daily-s3-raw-2"}
        assert httpx.post(f"{url}{BASE}/pause", data=name, auth=SA).json() == {"status": "ok"}
        assert [j["paused"] for j in _get(url, "jobs")[str(PROJECT_ID)]][:2] == [False, True]
        edited = httpx.post(f"{url}{BASE}/edit", data={**name, "events": ["A", "B"], "where": 'properties["x"] == 1'},
                            auth=SA)  # fmt: skip
        assert edited.json() == {"status": "ok"}
        bad = httpx.post(f"{url}{BASE}/edit", data={**name, "where": "properties["}, auth=SA)
        assert bad.status_code == 400 and bad.json()["status"] == "error"
        assert httpx.post(f"{url}{BASE}/resume", data=name, auth=SA).json() == {"status": "ok"}
        assert httpx.post(f"{url}{BASE}/cancel", data=name, auth=SA).json() == {"status": "ok"}
        names = [j["name"] for j in _get(url, "jobs")[str(PROJECT_ID)]]
        assert names == ["events-daily-s3-raw", "trial-events-daily-gcs-raw"]
        assert httpx.get(f"{url}{BASE}/status", params=name, auth=SA).status_code == 404
    finally:
        server.stop()


# -- the scheduler, in process, at a fixed time ------------------------------------------------------------------


def test_sync_looks_back_pipeline_sync_days_and_no_further(tmp_path: Path) -> None:
    import duckdb

    from mixhouse.catalog import Catalog
    from mixhouse.engine.duckdb.engine import DuckDBEngine
    from mixhouse.jobs import JobContext, JobRunner
    from mixhouse.pipelines.export import Credentials
    from mixhouse.pipelines.service import DataChanges, PipelineConfig, Scheduler
    from mixhouse.pipelines.store import PipelineStore

    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    DuckDBEngine(data_dir).close()
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    for i, day in enumerate(["2024-05-01", "2024-05-02", "2024-05-03"]):
        conn.execute(
            "INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties, user_key) "
            "VALUES (?, ?, ?, 'E', 'u', ?, '{}', 1)",
            [PROJECT_ID, i + 1, _ts(day, 60) * 1000, f"e{i}"],
        )
    conn.close()
    catalog, engine = Catalog(data_dir), DuckDBEngine(data_dir)
    try:
        ctx = JobContext(catalog, engine, data_dir)
        runner = JobRunner(ctx)  # not started: the test reads what the scheduler submits
        config = PipelineConfig(Credentials(), tmp_path, 1000, 3600, 10, 0.0)
        scheduler = Scheduler(ctx, runner, config, DataChanges())
        from mixhouse.pipelines.service import ExportKind

        runner.register(ExportKind(config))
        spec = _spec(from_date="2024-05-01", to_date="2024-05-03", sync="true")
        store = PipelineStore(catalog)
        pipeline = store.create(PROJECT_ID, "p", spec)
        for unit in ("2024-05-01", "2024-05-02", "2024-05-03"):  # exported once, with rows since changed
            store.schedule(pipeline.id, unit)
            store.succeeded(pipeline.id, unit, events=0, files=0, fingerprint="0:stale")
        # 2024-05-13 in the project (UTC): 10 days back is 2024-05-03, the edge, synced; the 2nd is past it.
        scheduler.tick(now=datetime(2024, 5, 13, 16, tzinfo=UTC))
        states = {t.unit: t.state for t in store.tasks(pipeline.id)}
        assert states == {"2024-05-01": "succeeded", "2024-05-02": "succeeded", "2024-05-03": "pending"}
        # Nothing changed since: the next tick syncs nothing more (no commit, no deletion).
        store.succeeded(pipeline.id, "2024-05-03", events=0, files=0, fingerprint="0:stale")
        scheduler.tick(now=datetime(2024, 5, 13, 16, tzinfo=UTC))
        assert store.task(pipeline.id, "2024-05-03").state == "succeeded"  # type: ignore[union-attr]
    finally:
        engine.close()
