"""Identity mappings in people pipelines (docs/pipelines.md): a real server writes Mixpanel's
`mp_identity_mappings_data` beside `mp_people_data`, to a real S3-compatible server (moto's server mode on
loopback) for a Simplified ID Merge project and to a local folder for an Original one; a later merge, and a
GDPR deletion, make the sync write the table again. One server and one S3 server for the module; events at
fixed past times, so the tests pass at any hour."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from mixhouse.domain.project import IdMerge
from tests.s3server import S3Server
from tests.server import PROJECT_ID, TOKEN, ServerProcess, seed_catalog
from tests.test_pipelines import BASE, SA, _create, _event, _get, _import, _server, _wait_for

BUCKET = "lake"
DAY = "2024-04-01"  # the events' day: a people pipeline exports profiles and links as they are now
ORIGINAL_ID, ORIGINAL_SECRET = 4343, "original-secret"
TABLE = "mp_identity_mappings_data"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("moto-ids") / "moto.log").start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake-ids")


@pytest.fixture(scope="module")
def mixhouse(tmp_path_factory: pytest.TempPathFactory, lake: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("pipelines-ids") / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir, project_id=ORIGINAL_ID, token="tok-o", secret=ORIGINAL_SECRET, api_key="k-o",
        id_merge=IdMerge.ORIGINAL, sa_user=None,
    )  # fmt: skip
    server = _server(data_dir, MIXHOUSE_PIPELINE_LOCAL_DIR=str(lake)).start()
    yield server
    server.stop()


def _mappings_s3(s3: S3Server, prefix: str) -> list[tuple[str, str]] | None:
    """The table's rows once its `complete` marker is there (None before, or while it is rewritten)."""
    folder = f"{prefix}/{PROJECT_ID}/{TABLE}"
    keys = s3.keys(BUCKET, folder)
    if f"{folder}/complete" not in keys:
        return None
    try:
        rows: list[tuple[str, str]] = []
        for key in (k for k in keys if k.endswith(".parquet")):
            body = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
            table = pq.read_table(io.BytesIO(body))
            assert table.column_names == ["distinct_id", "resolved_distinct_id"]
            rows += [(r["distinct_id"], r["resolved_distinct_id"]) for r in table.to_pylist()]
        return rows
    except botocore.exceptions.ClientError:  # a re-export began between the listing and the read
        return None


def test_a_people_pipeline_to_s3_exports_the_mappings_and_keeps_them_current(
    s3: S3Server, mixhouse: ServerProcess
) -> None:
    url = mixhouse.url
    _import(
        url,
        [
            _event("Visit", DAY, 10, "$device:d1", "v1", **{"$device_id": "d1"}),
            _event("Log In", DAY, 20, "alice", "l1", **{"$device_id": "d1", "$user_id": "alice"}),
            _event("Visit", DAY, 30, "bob", "v2"),
        ],
    )
    updates = [{"$token": TOKEN, "$distinct_id": d, "$set": {"plan": "pro"}} for d in ("alice", "bob")]
    r = httpx.post(f"{url}/engage", data={"data": orjson.dumps(updates).decode()}, timeout=30)
    assert r.text == "1", r.text
    params = {"type": "aws", "data_source": "people", "s3_bucket": BUCKET, "s3_prefix": "ids"}
    r = _create(url, **params, s3_region="us-east-1", s3_endpoint_url=s3.url, from_date=DAY)
    assert r.json() == {"pipeline_names": ["people-daily-aws"]}, r.text
    name, root = "people-daily-aws", f"ids/{PROJECT_ID}"
    try:
        assert _wait_for(lambda: _mappings_s3(s3, "ids")) == [("$device:d1", "alice"), ("alice", "alice")]
        assert s3.keys(BUCKET, root) == [
            f"{root}/{TABLE}/complete",
            f"{root}/{TABLE}/part-00000.parquet",
            f"{root}/mp_people_data/complete",
            f"{root}/mp_people_data/part-00000.parquet",
            f"{root}/schema/identities.json",
            f"{root}/schema/people.json",
        ]
        schema = orjson.loads(
            s3.client().get_object(Bucket=BUCKET, Key=f"{root}/schema/identities.json")["Body"].read()
        )
        assert schema == {
            "tables": {
                TABLE: {"distinct_id:string": "distinct_id", "resolved_distinct_id:string": "resolved_distinct_id"}
            }
        }
        status = _get(url, "status", name=name)["succeeded"]
        assert [(t["events"], t["files"]) for t in status] == [(2, 2)]  # 2 profiles; a part of each table
        # A later merge (a second device of alice's) changes no profile: the sync writes the mappings again.
        _import(url, [_event("Log In", DAY, 40, "alice", "l2", **{"$device_id": "d2", "$user_id": "alice"})])
        expected = [("$device:d1", "alice"), ("$device:d2", "alice"), ("alice", "alice")]
        _wait_for(lambda: _mappings_s3(s3, "ids") == expected, what="the mappings' re-export after a merge")
        # A GDPR deletion of alice takes her whole cluster out of the table (at once: no sync interval).
        deletion = httpx.post(
            f"{url}/api/app/data-deletions/v3.0",
            params={"project_id": str(PROJECT_ID)},
            json={"distinct_ids": ["alice"], "compliance_type": "GDPR"},
            auth=SA,
            timeout=30,
        )
        assert deletion.status_code in (200, 201), deletion.text
        _wait_for(lambda: _mappings_s3(s3, "ids") == [], what="the mappings' re-export after a deletion")
        assert s3.keys(BUCKET, f"{root}/{TABLE}") == [f"{root}/{TABLE}/complete", f"{root}/{TABLE}/part-00000.parquet"]
        # Every sync rewrote the one unit (yesterday's): the tables are whole in each export.
        assert len(_get(url, "status", name=name)["succeeded"]) == 1
    finally:
        r = httpx.post(f"{url}{BASE}/cancel", data={"project_id": str(PROJECT_ID), "name": name}, auth=SA, timeout=30)
        assert r.json() == {"status": "ok"}, r.text


def test_original_id_merge_aliases_and_merges_to_a_local_folder(lake: Path, mixhouse: ServerProcess) -> None:
    url, auth = mixhouse.url, (ORIGINAL_SECRET, "")

    def send(events: list[dict[str, Any]]) -> None:
        r = httpx.post(f"{url}/import", params={"strict": "1"}, json=events, auth=auth, timeout=30)
        assert r.status_code == 200, r.text

    folder = lake / "orig" / str(ORIGINAL_ID) / TABLE

    def mappings() -> list[tuple[str, str]] | None:
        if not (folder / "complete").exists():
            return None
        try:
            rows = pq.read_table(folder / "part-00000.parquet").to_pylist()
        except OSError:  # rewritten between the look and the read
            return None
        return [(r["distinct_id"], r["resolved_distinct_id"]) for r in rows]

    send([_event("$create_alias", DAY, 0, "u1", "o1", alias="a1"), _event("Visit", DAY, 5, "loner", "o2")])
    create = httpx.post(
        f"{url}{BASE}/create",
        data={"project_id": str(ORIGINAL_ID), "type": "gcs-schema", "data_source": "people",
              "local_prefix": "orig", "from_date": DAY},
        auth=auth,
        timeout=30,
    )  # fmt: skip
    assert create.json() == {"pipeline_names": ["people-daily-gcs-schema"]}, create.text
    try:
        assert _wait_for(mappings) == [("a1", "u1"), ("u1", "u1")]
        assert (lake / "orig" / str(ORIGINAL_ID) / "mp_people_data" / "complete").exists()
        # u2 joins u1's cluster, whose canonical id survives (the cluster of $merge's first id keeps its own)
        send([_event("$merge", DAY, 9, "a1", "o3", **{"$distinct_ids": ["a1", "u2"]})])
        _wait_for(lambda: mappings() == [("a1", "u1"), ("u1", "u1"), ("u2", "u1")], what="the merge's re-export")
    finally:
        r = httpx.post(
            f"{url}{BASE}/cancel", data={"project_id": str(ORIGINAL_ID), "name": "people-daily-gcs-schema"},
            auth=auth, timeout=30,
        )  # fmt: skip
        assert r.json() == {"status": "ok"}, r.text


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"type": "aws", "s3_bucket": BUCKET, "from_date": DAY, "data_source": "identity"},
         "identity mappings (mp_identity_mappings_data) are exported by every people pipeline"),
        ({"type": "aws", "s3_bucket": BUCKET, "from_date": DAY, "data_source": "identity_mappings"},
         "data_source must be one of events, people"),
        ({"type": "aws", "s3_bucket": BUCKET, "from_date": DAY, "data_source": "profiles"},
         "data_source must be one of events, people, got 'profiles'"),
        ({"type": "s3-raw", "s3_bucket": BUCKET, "from_date": DAY, "data_source": "people"}, "events only"),
        ({"type": "aws", "s3_bucket": BUCKET, "from_date": DAY, "data_source": "people",
          "where": 'properties["plan"] == "pro"'}, "every profile"),
        ({"type": "aws", "from_date": DAY, "data_source": "people"}, "s3_bucket"),
    ],
)  # fmt: skip
def test_bad_identity_and_people_parameters_are_400s_in_mixpanels_format(
    mixhouse: ServerProcess, params: dict[str, str], says: str
) -> None:
    r = _create(mixhouse.url, **params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == "error" and says in body["error"], body


def test_mapping_parts_hold_file_rows_rows_and_an_empty_table_gets_one_part() -> None:
    import pyarrow as pa

    from mixhouse.pipelines.files import IDENTITY_SCHEMA, identity_parts

    def batch(first: int, n: int) -> pa.RecordBatch:
        ids = [f"d{i:03d}" for i in range(first, first + n)]
        return pa.RecordBatch.from_arrays([pa.array(ids), pa.array(["u"] * n)], schema=IDENTITY_SCHEMA)

    parts = list(identity_parts(iter([batch(0, 3), batch(3, 4), batch(7, 0), batch(7, 3)]), 4))
    assert [name for name, _ in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    tables = [pq.read_table(io.BytesIO(data)) for _, data in parts]
    assert [t.num_rows for t in tables] == [4, 4, 2]
    assert [d for t in tables for d in t.column("distinct_id").to_pylist()] == [f"d{i:03d}" for i in range(10)]
    (name, data), *more = identity_parts(iter([]), 4)
    assert (name, more, pq.read_table(io.BytesIO(data)).schema.names) == (
        "part-00000.parquet", [], ["distinct_id", "resolved_distinct_id"]
    )  # fmt: skip
    exact = list(identity_parts(iter([batch(0, 4)]), 4))
    assert len(exact) == 1  # no empty part after a full one


def test_a_digest_does_not_depend_on_how_the_rows_are_cut_into_batches() -> None:
    # An export reads batches of pipeline_file_rows rows at most, a sync check batches of 50,000: with
    # fewer file rows, a digest that saw the batches would differ and every check would export again.
    import pyarrow as pa

    from mixhouse.domain.scan import EVENT_SCHEMA
    from mixhouse.pipelines.files import Fingerprint

    columns = [
        pa.array(["e"] * 5),
        pa.array([f"u{i}" for i in range(5)]),
        pa.array(list(range(5)), pa.int64()),
        pa.array([f"i{i}" for i in range(5)]),
        pa.array(['{"a":1}'] * 5),
    ]
    whole = pa.RecordBatch.from_arrays(columns, schema=EVENT_SCHEMA)

    def digest(*cuts: int) -> str:
        fingerprint, start = Fingerprint(), 0
        for end in [*cuts, 5]:
            fingerprint.update(whole.slice(start, end - start))
            start = end
        return fingerprint.hexdigest()

    assert digest() == digest(2) == digest(1, 3, 3, 4)
    changed = pa.RecordBatch.from_arrays([*columns[:4], pa.array(['{"a":1}'] * 4 + ['{"a":2}'])], schema=EVENT_SCHEMA)
    other = Fingerprint()
    other.update(changed)
    assert other.hexdigest() != digest() and other.hexdigest().startswith("5:")
