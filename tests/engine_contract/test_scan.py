"""`Engine.scan`: events deduplicated and identity-resolved as reports see them, filtered by the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pyarrow as pa

from mixhouse.domain.scan import EVENT_SCHEMA, PROFILE_SCHEMA, ScanQuery
from mixhouse.engine.base import Engine
from mixhouse.expr import EventExpr
from tests.server import PROJECT_ID, SECRET, TOKEN, ServerProcess, seed_catalog

T0 = 1_600_000_000  # 2020-09-13 12:26:40 UTC, seconds


def _import(server: ServerProcess, events: list[dict[str, object]]) -> None:
    r = httpx.post(f"{server.url}/import", params={"strict": "1"}, json=events, auth=(SECRET, ""), timeout=30)
    assert r.status_code == 200, r.text


def _engage(server: ServerProcess, updates: list[dict[str, object]]) -> None:
    r = httpx.post(f"{server.url}/engage", data={"data": orjson.dumps(updates).decode()}, timeout=30)
    assert r.status_code == 200 and r.text == "1", r.text


def _store(tmp_path: Path, env: dict[str, str]) -> Path:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env=env).start()
    try:
        _import(
            server,
            [
                {
                    "event": "view",
                    "properties": {
                        "time": T0 + 30,
                        "distinct_id": "$device:d1",
                        "$device_id": "d1",
                        "$insert_id": "a1",
                        "plan": "free",
                    },
                },
                {
                    "event": "view",
                    "properties": {"time": T0 + 10, "distinct_id": "bob", "$insert_id": "b1", "plan": "pro"},
                },
                # a second copy of b1 (same insert id): the later one is counted
                {
                    "event": "view",
                    "properties": {"time": T0 + 10, "distinct_id": "bob", "$insert_id": "b1", "plan": "pro", "copy": 2},
                },
                {
                    "event": "buy",
                    "properties": {
                        "time": T0 + 20,
                        "distinct_id": "alice",
                        "$device_id": "d1",
                        "$user_id": "alice",
                        "$insert_id": "c1",
                        "amount": 5,
                    },
                },
                {
                    "event": "view",
                    "properties": {"time": T0 + 3600 * 5, "distinct_id": "carol", "$insert_id": "d1x", "plan": "pro"},
                },
            ],
        )
        _engage(
            server,
            [
                {"$token": TOKEN, "$distinct_id": "alice", "$set": {"tier": "gold"}},
                {"$token": TOKEN, "$distinct_id": "bob", "$set": {"tier": "silver"}},
            ],
        )
    finally:
        server.stop()
    return data_dir


def _rows(engine: Engine, query: ScanQuery) -> list[dict[str, object]]:
    batches = list(engine.scan(query))
    for batch in batches:
        assert batch.schema == query.schema
        assert len(batch) <= query.batch_rows
    return pa.Table.from_batches(batches, schema=query.schema).to_pylist()


def test_events_are_deduplicated_resolved_and_time_ordered(
    tmp_path: Path, open_engine: Callable[[Path], Engine], engine_env: dict[str, str]
) -> None:
    engine = open_engine(_store(tmp_path, engine_env))
    rows = _rows(engine, ScanQuery(PROJECT_ID, batch_rows=2))
    assert [(r["name"], r["distinct_id"], r["time"]) for r in rows] == [
        ("view", "bob", (T0 + 10) * 1000),
        ("buy", "alice", (T0 + 20) * 1000),
        ("view", "alice", (T0 + 30) * 1000),  # the device's event, merged into alice
        ("view", "carol", (T0 + 3600 * 5) * 1000),
    ]
    assert orjson.loads(str(rows[0]["properties"]))["copy"] == 2  # the latest copy of a dedup key
    assert rows[0]["insert_id"] == "b1"
    assert EVENT_SCHEMA.names == ["name", "distinct_id", "time", "insert_id", "properties"]


def test_range_names_and_filter_are_applied_by_the_store(
    tmp_path: Path, open_engine: Callable[[Path], Engine], engine_env: dict[str, str]
) -> None:
    engine = open_engine(_store(tmp_path, engine_env))
    q = ScanQuery(PROJECT_ID, from_ms=(T0 + 15) * 1000, to_ms=(T0 + 3600) * 1000)
    assert [r["name"] for r in _rows(engine, q)] == ["buy", "view"]
    q = ScanQuery(PROJECT_ID, events=("view",), where=EventExpr.parse('properties["plan"] == "pro"'))
    assert [r["distinct_id"] for r in _rows(engine, q)] == ["bob", "carol"]
    # user["..."] reads the resolved user's profile
    q = ScanQuery(PROJECT_ID, where=EventExpr.parse('user["tier"] == "gold"'))
    assert [(r["name"], r["distinct_id"]) for r in _rows(engine, q)] == [("buy", "alice"), ("view", "alice")]
    # the id a filter sees is the resolved one
    q = ScanQuery(PROJECT_ID, where=EventExpr.parse('properties["$distinct_id"] == "alice"'))
    assert len(_rows(engine, q)) == 2


def test_user_order_groups_each_user_in_time_order(
    tmp_path: Path, open_engine: Callable[[Path], Engine], engine_env: dict[str, str]
) -> None:
    engine = open_engine(_store(tmp_path, engine_env))
    rows = _rows(engine, ScanQuery(PROJECT_ID, order="user"))
    assert [(r["distinct_id"], r["time"]) for r in rows] == [
        ("alice", (T0 + 20) * 1000),
        ("alice", (T0 + 30) * 1000),
        ("bob", (T0 + 10) * 1000),
        ("carol", (T0 + 3600 * 5) * 1000),
    ]


def test_ids_as_sent_without_identity_resolution(
    tmp_path: Path, open_engine: Callable[[Path], Engine], engine_env: dict[str, str]
) -> None:
    engine = open_engine(_store(tmp_path, engine_env))
    rows = _rows(engine, ScanQuery(PROJECT_ID, resolve_identity=False, events=("view",)))
    assert "$device:d1" in {r["distinct_id"] for r in rows}


def test_profiles(tmp_path: Path, open_engine: Callable[[Path], Engine], engine_env: dict[str, str]) -> None:
    engine = open_engine(_store(tmp_path, engine_env))
    rows = _rows(engine, ScanQuery(PROJECT_ID, kind="profiles"))
    assert [(r["distinct_id"], orjson.loads(str(r["properties"]))["tier"]) for r in rows] == [
        ("alice", "gold"),
        ("bob", "silver"),
    ]
    q = ScanQuery(PROJECT_ID, kind="profiles", where=EventExpr.parse('properties["tier"] == "silver"'))
    assert [r["distinct_id"] for r in _rows(engine, q)] == ["bob"]
    assert PROFILE_SCHEMA.names == ["distinct_id", "properties"]


def test_another_project_sees_nothing(
    tmp_path: Path, open_engine: Callable[[Path], Engine], engine_env: dict[str, str]
) -> None:
    engine = open_engine(_store(tmp_path, engine_env))
    assert list(engine.scan(ScanQuery(PROJECT_ID + 1))) == []
    assert list(engine.scan(ScanQuery(PROJECT_ID + 1, kind="profiles"))) == []
