"""`Engine.delete_users` and `Engine.user_data` (GDPR/CCPA): a user's whole identity cluster, its events,
profile and identity links; other users untouched; a later event of a deleted id starts a new history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pyarrow as pa

from mixhouse.domain.scan import ScanQuery
from mixhouse.engine.base import Engine
from tests.server import PROJECT_ID, SECRET, TOKEN, ServerProcess, seed_catalog

T0 = 1_600_000_000


def _store(tmp_path: Path, env: dict[str, str]) -> Path:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env=env).start()
    try:
        events = [
            {
                "event": "view",
                "properties": {"time": T0, "distinct_id": "$device:d1", "$device_id": "d1", "$insert_id": "a"},
            },
            {
                "event": "buy",
                "properties": {
                    "time": T0 + 5,
                    "distinct_id": "alice",
                    "$device_id": "d1",
                    "$user_id": "alice",
                    "$insert_id": "b",
                },
            },
            {"event": "view", "properties": {"time": T0 + 9, "distinct_id": "bob", "$insert_id": "c"}},
        ]
        r = httpx.post(f"{server.url}/import", params={"strict": "1"}, json=events, auth=(SECRET, ""), timeout=30)
        assert r.status_code == 200, r.text
        updates = [
            {"$token": TOKEN, "$distinct_id": "alice", "$set": {"tier": "gold"}},
            {"$token": TOKEN, "$distinct_id": "bob", "$set": {"tier": "silver"}},
        ]
        r = httpx.post(f"{server.url}/engage", data={"data": orjson.dumps(updates).decode()}, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        server.stop()
    return data_dir


def _ids(engine: Engine) -> list[str]:
    table = pa.Table.from_batches(list(engine.scan(ScanQuery(PROJECT_ID))), schema=ScanQuery(PROJECT_ID).schema)
    return [str(d) for d in table.column("distinct_id").to_pylist()]


def test_retrieval_then_deletion_of_a_cluster(
    tmp_path: Path, open_engine: Callable[[Path], Engine], engine_env: dict[str, str]
) -> None:
    engine = open_engine(_store(tmp_path, engine_env))
    data = engine.user_data(PROJECT_ID, ["$device:d1"])
    assert data.distinct_ids == ("$device:d1", "alice")
    assert data.canonical == {"$device:d1": "alice", "alice": "alice"}
    assert list(data.profiles) == ["alice"] and data.profiles["alice"]["tier"] == "gold"
    lines = [orjson.loads(line) for line in b"".join(data.events).splitlines()]
    assert [
        (e["event"], e["properties"]["distinct_id"], e["properties"].get("$distinct_id_before_identity")) for e in lines
    ] == [
        ("view", "alice", "$device:d1"),
        ("buy", "alice", None),
    ]

    result = engine.delete_users(PROJECT_ID, ["alice"])
    assert (result.distinct_ids, result.events, result.profiles) == (("$device:d1", "alice"), 2, 1)
    assert _ids(engine) == ["bob"]
    assert engine.profile(PROJECT_ID, "alice") is None
    assert (engine.profile(PROJECT_ID, "bob") or {}).get("tier") == "silver"
    again = engine.user_data(PROJECT_ID, ["alice"])
    assert again.profiles == {} and b"".join(again.events) == b""
    # the device link is gone: the device is its own id again
    assert engine.user_data(PROJECT_ID, ["$device:d1"]).canonical == {"$device:d1": "$device:d1"}
