"""Large /import bodies validated in worker processes and handed to the writer as columns (mixhouse/workers,
mixhouse/domain/columns.py): the same stored events, slot columns, dedup and replies as the ordinary path;
a batch a worker declines, or a worker that dies, changes nothing a client sees; workers die with the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import psutil
import pytest

from mixhouse.domain import columns as cols
from mixhouse.domain import events as ev
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb.engine import DuckDBEngine
from tests.conftest import export
from tests.server import SECRET, ServerProcess, seed_catalog
from tests.test_ingest_batch_path import CTX, T
from tests.test_ingest_batch_path import SIMPLIFIED as PROJECT
from tests.test_property_columns import _columns_match_json


def plain(i: int, **extra: Any) -> dict[str, Any]:
    """A plain event (what the batch path takes): flat properties of every kind but lists and objects."""
    props: dict[str, Any] = {
        "time": T + i,
        "distinct_id": f"user-{i % 7}",
        "$insert_id": f"ins-{i}",
        "plan": ("free", "pro", 3, None, True)[i % 5],  # one key, several kinds
        "amount": i + 0.5,
        "big": 2**64 - 1 if i % 11 == 0 else i,  # the largest integer JSON bodies carry here, now and then
        "name": f"n\u00e9-{i}",
    }
    if i % 3:
        props["sometimes"] = i
    props.update(extra)
    return {"event": ("Viewed", "Bought")[i % 2], "properties": props}


def ordinary(records: list[dict[str, Any]]) -> ev.PreparedBatch:
    return ev.prepare_events(orjson.loads(orjson.dumps(records)), lambda _p: PROJECT, CTX, project=PROJECT)


def test_columns_hold_what_the_ordinary_path_stores() -> None:
    records = [plain(i) for i in range(40)]
    got = cols.import_columns(orjson.dumps(records), PROJECT, CTX, locating=False)
    assert got is not None
    want = ordinary(records)
    assert not want.failed and len(got) == len(want.events) == 40
    assert got.stored_events() == want.events  # every field (but the parsed values)
    values = [e.values for e in want.events]
    keys = set().union(*(v or {} for v in values)) - ev.SERVER_ADDED
    assert set(got.by_key) == keys
    for key in keys:
        column = [(v or {}).get(key, cols.MISSING) for v in values]
        split = cols.split_values(column)
        assert split is not None
        assert [None if a is None else a.to_pylist() for a in got.by_key[key]] == list(split), key
        assert got.counts[key] == sum(1 for v in column if v is not cols.MISSING)


@pytest.mark.parametrize("without_insert_id", [(), (0,), tuple(range(0, 60, 3))])
def test_key_counts_are_those_of_the_stored_documents(without_insert_id: tuple[int, ...]) -> None:
    """Per (UTC hour, event, key): how many stored documents carry the key, the server's own keys included
    (when every event has them, and when some lack `$insert_id`), whatever kinds its values hold."""
    records = [plain(i) for i in range(60)]
    for i, record in enumerate(records):
        record["properties"]["time"] += i * 700  # (seconds) over several hours
        if i in without_insert_id:
            del record["properties"]["$insert_id"]
    got = cols.import_columns(orjson.dumps(records), PROJECT, CTX, locating=False)
    assert got is not None
    want: dict[tuple[int, str, str], int] = {}
    for stored in got.stored_events():
        for key in orjson.loads(stored.properties):
            hour = (stored.time_ms // cols.HOUR_MS, stored.event, key)
            want[hour] = want.get(hour, 0) + 1
    counts = got.key_counts
    rows = zip(
        counts.hour.to_pylist(), counts.event.to_pylist(), counts.name.to_pylist(), counts.n.to_pylist(), strict=True
    )
    assert {(h, e, k): n for h, e, k, n in rows} == want
    assert len(counts.n) == len(want)  # each (hour, event, key) once


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps([plain(0), {"event": "x", "properties": {"distinct_id": "a"}}]),  # no time: fails one event
        orjson.dumps([plain(0, tags=["a", "b"])]),  # a list: the per-event look
        orjson.dumps([plain(0, ip="1.2.3.4")]),  # nothing to locate without a locator, but see `locating`
        orjson.dumps([plain(i) for i in range(ev.MAX_BATCH_EVENTS + 1)]),  # too many
        orjson.dumps([{"event": "$identify", "properties": {"time": T, "distinct_id": "a"}}]),
        b"[{not json",
        b"[]",
        b"[1, 2]",
    ],
)
def test_a_batch_that_is_not_plain_is_left_to_the_ordinary_path(body: bytes) -> None:
    locating = b"1.2.3.4" in body
    assert cols.import_columns(body, PROJECT, CTX, locating=locating) is None


def _rows(conn: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return conn.execute(
        """SELECT project_id, seq, time_ms, event, distinct_id, insert_id, properties, user_key FROM events
           ORDER BY seq"""
    ).fetchall()


def _slot_values(conn: duckdb.DuckDBPyConnection) -> dict[tuple[int, str], list[tuple[Any, ...]]]:
    """Per (project, key): the slot's (ps, pn, po) of every row, in seq order (slot numbers may differ)."""
    out = {}
    for project, name, slot in conn.execute("SELECT project_id, name, slot FROM property_slots").fetchall():
        out[(project, name)] = conn.execute(
            f"SELECT ps{slot}, pn{slot}, CAST(po{slot} AS VARCHAR) FROM events WHERE project_id = ? ORDER BY seq",
            [project],
        ).fetchall()
    return out


def test_a_group_of_rows_and_columns_is_stored_as_if_all_were_rows(tmp_path: Path) -> None:
    """One group commit with /track-like rows before and after an /import batch handed over as columns, one
    of its events a copy (same dedup key) of a stored row: the store holds what it holds when every event
    comes as a row."""
    first = [plain(i) for i in range(5)]
    batch = [plain(i) for i in range(5, 105)] + [plain(2)]  # the last one supersedes an earlier row
    last = [plain(i, extra_key=i) for i in range(105, 110)]
    part = cols.import_columns(orjson.dumps(batch), PROJECT, CTX, locating=False)
    assert part is not None
    stores = {}
    for name, as_columns in (("columns", True), ("rows", False)):
        engine = DuckDBEngine(tmp_path / name)
        try:
            middle = WriteBatch(columns=[part]) if as_columns else WriteBatch(events=ordinary(batch).events)
            engine._write_group([WriteBatch(events=ordinary(first).events)])
            engine._write_group([middle, WriteBatch(events=ordinary(last).events)])
        finally:
            engine.close()
        conn = duckdb.connect(str(tmp_path / name / "events.duckdb"))
        assert _columns_match_json(conn) > 0  # every slot filled where its key is, with the JSON's value
        stores[name] = (
            _rows(conn),
            _slot_values(conn),
            conn.execute("SELECT project_id, seq FROM superseded_events ORDER BY seq").fetchall(),
        )
        conn.close()
    assert stores["columns"] == stores["rows"]
    assert stores["columns"][2] == [(PROJECT.id, 3)]  # the copy superseded the row of plain(2), seq 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("workers") / "data"
    seed_catalog(data_dir)
    env = {"MIXHOUSE_IMPORT_WORKERS": "1", "MIXHOUSE_IMPORT_WORKER_MIN_BYTES": "1000"}
    proc = ServerProcess(data_dir, env=env).start()
    yield proc
    proc.stop()


def _import(server: ServerProcess, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/import",
        params={"strict": "1"},
        content=body,
        headers={"Content-Type": "application/json"},
        auth=(SECRET, ""),
        timeout=60,
    )


def _workers(server: ServerProcess) -> list[psutil.Process]:
    assert server.proc is not None
    children = psutil.Process(server.proc.pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def test_an_import_through_a_worker_is_stored_as_sent(server: ServerProcess) -> None:
    records = [plain(i, batch="through a worker") for i in range(300)]
    r = _import(server, orjson.dumps(records))
    assert r.status_code == 200, r.text
    assert r.json() == {"code": 200, "num_records_imported": 300, "status": "OK"}
    assert len(_workers(server)) == 1  # the body went to a worker (started on this first large body)
    stored = [e for e in export(server.url) if e["properties"].get("batch") == "through a worker"]  # type: ignore[union-attr]
    assert len(stored) == 300
    for sent, got in zip(records, stored, strict=True):
        props: dict[str, Any] = got["properties"]  # type: ignore[assignment]
        assert got["event"] == sent["event"]
        for key, value in sent["properties"].items():
            assert props[key] == value, key
        assert props["$import"] is True


def test_a_batch_a_worker_declines_gets_the_ordinary_reply(server: ServerProcess) -> None:
    records = [plain(i, batch="declined") for i in range(50)]
    del records[7]["properties"]["time"]
    r = _import(server, orjson.dumps(records))
    assert r.status_code == 400
    body = r.json()
    assert body["num_records_imported"] == 49
    assert [(f["index"], f["field"]) for f in body["failed_records"]] == [(7, "properties.time")]
    r = _import(server, b"[" + b" " * 2000 + b"{bad")
    assert r.status_code == 400 and "Invalid JSON" in r.text


def test_a_worker_that_dies_fails_no_request(server: ServerProcess) -> None:
    _import(server, orjson.dumps([plain(i, batch="warm") for i in range(50)]))
    for worker in _workers(server):
        worker.kill()
        worker.wait(10)
    records = [plain(i, batch="after a death") for i in range(100)]
    r = _import(server, orjson.dumps(records))
    assert r.status_code == 200, r.text
    assert r.json()["num_records_imported"] == 100
    assert len([e for e in export(server.url) if e["properties"].get("batch") == "after a death"]) == 100  # type: ignore[union-attr]
    r = _import(server, orjson.dumps([plain(i, batch="again") for i in range(100)]))
    assert r.status_code == 200
    assert len(_workers(server)) == 1  # a new pool took over


def test_workers_die_with_a_killed_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"MIXHOUSE_IMPORT_WORKER_MIN_BYTES": "0"}).start()
    try:
        assert _import(proc, orjson.dumps([plain(0)])).status_code == 200
        workers = _workers(proc)
        assert workers
    finally:
        proc.kill()  # SIGKILL: no shutdown code runs
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        time.sleep(0.05)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_a_data_parameter_still_wins_over_a_large_body(server: ServerProcess) -> None:
    """`data` in the query string is what /import stores, whatever the body (the ordinary path decides)."""
    one = orjson.dumps([plain(1, batch="from the parameter")]).decode()
    body = orjson.dumps([plain(i, batch="from the body") for i in range(50)])
    r = httpx.post(
        f"{server.url}/import",
        params={"strict": "1", "data": one},
        content=body,
        headers={"Content-Type": "application/json"},
        auth=(SECRET, ""),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["num_records_imported"] == 1
    batches = [e["properties"].get("batch") for e in export(server.url)]  # type: ignore[union-attr]
    assert "from the parameter" in batches and "from the body" not in batches
