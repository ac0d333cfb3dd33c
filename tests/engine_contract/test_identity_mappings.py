"""`Engine.identity_mappings`: every id of a merged identity cluster with the id it resolves to, its
canonical id included (mapped to itself), sorted by id, as Arrow; Simplified device links and Original
aliases and merges alike; a deleted cluster leaves it. One store per engine, two projects in it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from mixhouse.domain.project import IdMerge
from mixhouse.engine.base import IDENTITY_MAPPING_SCHEMA, Engine
from tests.server import PROJECT_ID, SECRET, ServerProcess, seed_catalog

T0 = 1_600_000_000
ORIGINAL_ID, ORIGINAL_SECRET = 4343, "original-secret"
DELETING_ID, DELETING_SECRET = 4444, "deleting-secret"  # the Simplified events again, for the deletion


def _event(name: str, second: int, insert_id: str, **props: object) -> dict[str, object]:
    return {"event": name, "properties": {"time": T0 + second, "$insert_id": insert_id, **props}}


SIMPLIFIED = [
    _event("view", 0, "s1", distinct_id="$device:d1", **{"$device_id": "d1"}),
    _event("login", 5, "s2", **{"$device_id": "d1", "$user_id": "alice"}),
    _event("login", 6, "s3", **{"$device_id": "d2", "$user_id": "alice"}),
    _event("login", 7, "s4", **{"$device_id": "d3", "$user_id": "bob"}),
    _event("view", 8, "s5", distinct_id="carol"),  # merged with no one: absent
]
ORIGINAL = [
    _event("$create_alias", 0, "o1", distinct_id="u1", alias="a1"),
    _event("$merge", 1, "o2", **{"$distinct_ids": ["u2", "m2"]}),
    _event("view", 2, "o3", distinct_id="loner"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Path:
    data_dir = tmp_path_factory.mktemp("mappings") / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir, project_id=ORIGINAL_ID, token="tok-o", secret=ORIGINAL_SECRET, api_key="k-o", id_merge=IdMerge.ORIGINAL,
        sa_user=None,
    )  # fmt: skip
    seed_catalog(data_dir, project_id=DELETING_ID, token="tok-d", secret=DELETING_SECRET, api_key="k-d", sa_user=None)
    server = ServerProcess(data_dir, env=engine_env).start()
    try:
        for events, secret in ((SIMPLIFIED, SECRET), (ORIGINAL, ORIGINAL_SECRET), (SIMPLIFIED, DELETING_SECRET)):
            r = httpx.post(f"{server.url}/import", params={"strict": "1"}, json=events, auth=(secret, ""), timeout=30)
            assert r.status_code == 200, r.text
    finally:
        server.stop()
    return data_dir


@pytest.fixture
def engine(store: Path, open_engine: Callable[[Path], Engine]) -> Iterator[Engine]:
    yield open_engine(store)


def _rows(batches: Iterator[pa.RecordBatch], batch_rows: int) -> list[tuple[str, str]]:
    found = list(batches)
    for batch in found:
        assert batch.schema == IDENTITY_MAPPING_SCHEMA
        assert 0 < len(batch) <= batch_rows
    table = pa.Table.from_batches(found, schema=IDENTITY_MAPPING_SCHEMA)
    return list(
        zip(table.column("distinct_id").to_pylist(), table.column("resolved_distinct_id").to_pylist(), strict=True)
    )


def test_simplified_device_links_list_each_cluster_with_its_user(engine: Engine) -> None:
    assert _rows(engine.identity_mappings(PROJECT_ID, batch_rows=2), 2) == [
        ("$device:d1", "alice"),
        ("$device:d2", "alice"),
        ("$device:d3", "bob"),
        ("alice", "alice"),
        ("bob", "bob"),
    ]
    assert IDENTITY_MAPPING_SCHEMA.names == ["distinct_id", "resolved_distinct_id"]


def test_original_aliases_and_merges_resolve_to_the_canonical_id(engine: Engine) -> None:
    assert _rows(engine.identity_mappings(ORIGINAL_ID), 50_000) == [
        ("a1", "u1"),
        ("m2", "u2"),
        ("u1", "u1"),
        ("u2", "u2"),
    ]
    assert _rows(engine.identity_mappings(9999), 50_000) == []  # no merge, no row


def test_a_deleted_cluster_leaves_the_mappings_and_pages_join_up(engine: Engine, engine_name: str) -> None:
    engine.delete_users(DELETING_ID, ["$device:d2"])  # alice's whole cluster
    assert _rows(engine.identity_mappings(DELETING_ID, batch_rows=1), 1) == [("$device:d3", "bob"), ("bob", "bob")]
    if engine_name == "chdb":  # the ClickHouse driver reads whole results: pages of ids, each after the last
        from mixhouse.engine.clickhouse.engine import ClickHouseEngine
        from mixhouse.engine.clickhouse.mappings import identity_mappings

        assert isinstance(engine, ClickHouseEngine)
        paged = _rows(identity_mappings(engine.store, ORIGINAL_ID, 10, page_rows=1), 10)
        assert paged == [("a1", "u1"), ("m2", "u2"), ("u1", "u1"), ("u2", "u2")]
