"""Property columns (engine/duckdb/property_columns.py): filled by the writer as events arrive, by the
upgrade for a store written before them (resumable), and read by reports with the semantics of the JSON
they copy; export still returns every value exactly as sent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pyarrow as pa
import pytest

from mixhouse.engine.duckdb import property_columns
from mixhouse.engine.duckdb.printer import quote
from mixhouse.engine.duckdb.schema import SCHEMA, user_key_sql
from mixhouse.expr import interpreter
from mixhouse.expr.parser import parse
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
T0 = 1704103200  # 2024-01-01T10:00:00Z
DAY = "2024-01-01"
# One key holding every kind, as schemaless senders do, and values export must give back exactly.
MIXED: list[Any] = [
    "a",
    2,
    2.5,
    ["a", 3, True, None, ["x"], {"y": 1}],
    {"nested": {"deep": [1, "two"]}},
    True,
    False,
    None,
    12345678901234567890,
    -0.0,
    1e300,
    "é ☃ 𝄞",
    'quote " and \\ backslash',
    "",
    [],
    "nul \u0000 inside",
]


def _records() -> list[dict[str, Any]]:
    records = []
    for i, v in enumerate(MIXED):
        props: dict[str, Any] = {"v": v, "n": i, "s": f"s{i % 3}"}
        if i % 4 == 0:
            del props["n"]  # missing in some events
        records.append(props)
    return records


def _write_old_store(data_dir: Path, records: list[dict[str, Any]]) -> None:
    """A store as written before the property columns: the old schema and rows, no slot columns."""
    seed_catalog(data_dir)
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    conn.execute(SCHEMA)
    for i, props in enumerate(records):
        conn.execute(
            f"""INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties, user_key)
                VALUES (?, ?, ?, 'old', ?, ?, ?, {user_key_sql("?")})""",
            [PROJECT_ID, i + 1, (T0 + i) * 1000, f"u{i}", f"i{i}", orjson.dumps(props).decode(), f"u{i}"],
        )
    conn.close()


def _segmentation(server: ServerProcess, event: str, **params: str) -> dict[str, int]:
    r = httpx.get(
        f"{server.url}/api/query/segmentation",
        params={"project_id": PROJECT_ID, "event": event, "from_date": DAY, "to_date": DAY, **params},
        auth=AUTH,
    )
    assert r.status_code == 200, r.text
    return {k: int(v[DAY]) for k, v in r.json()["data"]["values"].items() if v[DAY]}


def _expected(records: list[dict[str, Any]], on: str, where: str | None = None) -> dict[str, int]:
    """The reference interpreter's answer: events per segment key."""
    counts: Counter[str] = Counter()
    on_expr, where_expr = parse(on), parse(where) if where else None
    for props in records:
        record = {"properties": props}
        if where_expr is not None and not interpreter.passes(where_expr, record):
            continue
        counts.update(interpreter.segment_keys(on_expr, record))
    return dict(counts)


def _db(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data_dir / "events.duckdb"))


def _columns_match_json(conn: duckdb.DuckDBPyConnection) -> int:
    """Checks every filled slot against the JSON it copies; returns how many (row, slot) pairs hold a value."""
    filled = 0
    for project, name, slot in conn.execute("SELECT project_id, name, slot FROM property_slots").fetchall():
        ps, pn, po = property_columns.columns(slot)
        j = f"json_extract(properties, {quote(property_columns.pointer(name))})"
        t = f"CAST({j} AS VARCHAR)"
        bad = conn.execute(
            f"""SELECT seq FROM events WHERE project_id = ? AND NOT (
                    {ps} IS NOT DISTINCT FROM CASE WHEN starts_with({t}, '"') THEN {j} ->> '$' END
                    AND {pn} IS NOT DISTINCT FROM TRY_CAST({t} AS DOUBLE)
                    AND CAST({po} AS VARCHAR) IS NOT DISTINCT FROM
                        CASE WHEN NOT starts_with({t}, '"') AND TRY_CAST({t} AS DOUBLE) IS NULL THEN {t} END)""",
            [project],
        ).fetchall()
        assert not bad, f"slot {slot} ({name!r}) differs from the JSON in rows {bad}"
        filled += conn.execute(
            f"SELECT count(*) FROM events WHERE project_id = ? AND {j} IS NOT NULL", [project]
        ).fetchall()[0][0]
    return int(filled)


def _check_reports(server: ServerProcess, records: list[dict[str, Any]]) -> None:
    for on, where in (
        ('properties["v"]', None),
        ('properties["s"]', 'properties["n"] > 3'),
        ('properties["v"]', 'defined(properties["n"])'),
        ('properties["v"]', 'not properties["v"]'),
        ('properties["s"]', 'properties["v"] == "a" or "a" in properties["v"]'),
    ):
        params = {"on": on, **({"where": where} if where else {})}
        assert _segmentation(server, "old", **params) == _expected(records, on, where), (on, where)


def test_a_store_written_without_the_columns_is_upgraded_and_reads_the_same(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    records = _records()
    _write_old_store(data_dir, records)
    server = ServerProcess(data_dir).start()
    try:
        _check_reports(server, records)
        exported = export(server.url, event='["old"]', from_date=DAY, to_date=DAY)
    finally:
        server.stop()
    # Export gives back every value as sent: big integers, -0.0, unicode, nesting, lists.
    got = sorted(exported, key=lambda e: e["properties"]["time"])  # type: ignore[index]
    assert [{k: v for k, v in e["properties"].items() if k in ("v", "n", "s")} for e in got] == records  # type: ignore[union-attr]
    assert orjson.dumps(got[8]["properties"]["v"]) == b"12345678901234567890"  # type: ignore[index]
    conn = _db(data_dir)
    try:
        assert conn.execute("SELECT project_id, overflow, backfill_next FROM property_layout").fetchall() == [
            (PROJECT_ID, False, None)
        ]
        assert {r[0] for r in conn.execute("SELECT name FROM property_slots").fetchall()} == {"v", "n", "s"}
        assert _columns_match_json(conn) == sum(len(r) for r in records)
    finally:
        conn.close()


def test_an_interrupted_upgrade_resumes_where_it_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    records = _records()
    _write_old_store(data_dir, records)
    conn = _db(data_dir)
    property_columns.migrate(conn, chunk_rows=4)
    # As a kill after the first chunks leaves it: progress committed, later rows not filled yet.
    cleared = ", ".join(f"{c} = NULL" for i in range(property_columns.width(conn)) for c in property_columns.columns(i))
    conn.execute(f"UPDATE events SET {cleared} WHERE seq >= 9")
    conn.execute("UPDATE property_layout SET backfill_next = 9")
    # Meanwhile, reports read the JSON, not the half-filled columns.
    assert property_columns.ready_slots(conn, PROJECT_ID) == {}
    conn.close()
    server = ServerProcess(data_dir).start()
    try:
        _check_reports(server, records)
    finally:
        server.stop()
    conn = _db(data_dir)
    try:
        assert conn.execute("SELECT backfill_next FROM property_layout").fetchall() == [(None,)]
        assert _columns_match_json(conn) == sum(len(r) for r in records)
        property_columns.migrate(conn)  # once done, running it again changes nothing
        assert _columns_match_json(conn) == sum(len(r) for r in records)
    finally:
        conn.close()


def _event(i: int, props: dict[str, Any]) -> dict[str, Any]:
    return {"event": "old", "properties": {"distinct_id": f"u{i}", "time": T0 + i, "$insert_id": f"i{i}", **props}}


def test_the_writer_fills_the_columns_of_each_kind_a_key_takes(fresh_server: ServerProcess) -> None:
    records = _records()
    # Two requests: the key's kinds change between and within batches.
    for start, stop in ((0, 7), (7, len(records))):
        events = [_event(i, records[i]) for i in range(start, stop)]
        r = httpx.post(f"{fresh_server.url}/import", json=events, auth=(SECRET, ""))
        assert r.status_code == 200, r.text
    _check_reports(fresh_server, records)
    # A key the server adds to every event has no slot: read from the JSON, with the same answer.
    imported = [{**r, "$import": True} for r in records]
    on = 'properties["$import"]'
    assert _segmentation(fresh_server, "old", on=on, where='defined(properties["n"])') == _expected(
        imported, on, 'defined(properties["n"])'
    )
    fresh_server.stop()
    conn = _db(fresh_server.data_dir)
    try:
        slotted = {r[0] for r in conn.execute("SELECT name FROM property_slots").fetchall()}
        assert slotted >= {"v", "n", "s"}
        # The keys the server adds to every event take no slot (read from the JSON when asked for).
        assert not slotted & property_columns.UNSLOTTED
        assert _columns_match_json(conn) == sum(len(r) for r in records)
    finally:
        conn.close()
    fresh_server.start()


def test_keys_past_the_slots_are_read_from_the_json(fresh_server: ServerProcess) -> None:
    many = property_columns.SLOTS + 3
    # Key k0 is in every event, k1 in all but one, ...: the most frequent keys get the slots first.
    events = [_event(i, {f"k{k}": f"x{i % 2}" for k in range(many) if i >= k}) for i in range(many + 1)]
    r = httpx.post(f"{fresh_server.url}/import", json=events, auth=(SECRET, ""))
    assert r.status_code == 200, r.text
    r = httpx.get(
        f"{fresh_server.url}/api/query/events/properties/top",
        params={"project_id": PROJECT_ID, "event": "old", "from_date": DAY, "to_date": DAY, "limit": 100},
        auth=AUTH,
    )
    assert r.status_code == 200, r.text
    top = {k: v["count"] for k, v in r.json().items() if k.startswith("k")}
    assert top == {f"k{k}": many + 1 - k for k in range(many)}
    last = f'properties["k{many - 1}"]'
    records = [e["properties"] for e in events]
    assert _segmentation(fresh_server, "old", on=last) == _expected(records, last)
    assert _segmentation(fresh_server, "old", on='properties["k0"]', where=f'{last} == "x0"') == _expected(
        records, 'properties["k0"]', f'{last} == "x0"'
    )
    fresh_server.stop()
    conn = _db(fresh_server.data_dir)
    try:
        slotted = {r[0] for r in conn.execute("SELECT name FROM property_slots").fetchall()}
        assert len(slotted) == property_columns.SLOTS and f"k{many - 1}" not in slotted
        assert conn.execute("SELECT overflow FROM property_layout").fetchall() == [(True,)]
        _columns_match_json(conn)
    finally:
        conn.close()
    fresh_server.start()


# One key per kind a batch may hold throughout, in every event or in some: the writer's per-kind paths.
_BY_KIND: dict[str, list[Any]] = {
    "str": ["a", "", "é ☃ 𝄞", "nul \u0000 inside"],
    "int": [1, -2, 12345678901234567890, 0],
    "mix_num": [1, 2.5, -0.0, 1e300],
    "bool": [True, False, True, False],
    "null": [None, None, None, None],
    "list": [[], ["a", 3], [{"y": 1}], [None]],
    "obj": [{}, {"nested": {"deep": [1, "two"]}}, {"a": None}, {"b": True}],
    "mixed": ["a", 2, True, [1]],
}


@pytest.mark.parametrize("parameter_rows", [0, 1000], ids=["arrow-insert", "parameter-insert"])
def test_the_writer_fills_only_the_columns_a_kind_needs(monkeypatch: pytest.MonkeyPatch, parameter_rows: int) -> None:
    """A key holding one kind of value across a batch fills that kind's column alone (the other two stay
    NULL and are not written), with the same values as the JSON they copy; so do keys missing in some
    events, and a key of every kind. The same whether the batch is inserted from a registered Arrow table
    or from list parameters (a small batch, property_columns.PARAMETER_ROWS)."""
    monkeypatch.setattr(property_columns, "PARAMETER_ROWS", parameter_rows)
    conn = duckdb.connect()
    conn.execute(SCHEMA)
    property_columns.ensure_tables(conn)
    writer = property_columns.SlotWriter(conn)
    docs: list[bytes] = []
    for i in range(8):
        props = {k: v[i % 4] for k, v in _BY_KIND.items()}
        props.update({f"some_{k}": v[i % 4] for k, v in _BY_KIND.items() if i % 3})  # missing in some events
        docs.append(orjson.dumps(props))
    table = pa.table(
        {
            "project_id": pa.array([PROJECT_ID] * len(docs), pa.int64()),
            "seq": pa.array(range(1, len(docs) + 1), pa.int64()),
            "time_ms": pa.array([T0 * 1000] * len(docs), pa.int64()),
            "event": ["old"] * len(docs),
            "distinct_id": [f"u{i}" for i in range(len(docs))],
            "insert_id": [f"i{i}" for i in range(len(docs))],
            "properties": pa.array(docs, pa.binary()).cast(pa.string()),
        }
    )
    prepared = writer.prepare(conn, "incoming", table, docs)
    writer.insert(conn, "incoming", table, prepared, user_key_sql("distinct_id"))
    assert _columns_match_json(conn) == 8 * len(_BY_KIND) + sum(1 for i in range(8) if i % 3) * len(_BY_KIND)
    slots = dict(conn.execute("SELECT name, slot FROM property_slots").fetchall())
    needed = {"str": "s", "int": "n", "mix_num": "n", "bool": "o", "null": "o", "list": "o", "obj": "o"}
    for name, kind in needed.items():
        for prefix in ("", "some_"):
            ps, pn, po = property_columns.columns(slots[prefix + name])
            counts = dict(
                zip(
                    "sno",
                    conn.execute(f"SELECT count({ps}), count({pn}), count({po}) FROM events").fetchall()[0],
                    strict=True,
                )
            )
            assert {k for k, n in counts.items() if n} == {kind}, (prefix + name, counts)
    conn.close()


def test_the_per_batch_split_is_the_per_value_split() -> None:
    """`_columns_of` (a key's values over a batch) gives, row by row, what `_split_value` gives each value."""
    pool: list[Any] = ["a", "", 1, 2.5, -0.0, 2**63, 10**30, True, False, None, [1, "x"], {"k": [1]}, [], {}]
    missing = property_columns._MISSING
    for a in [*pool, missing]:
        for b in [*pool, missing]:
            for values in ([a], [a, b], [a, b, a], [b, a, a]):
                got = property_columns._columns_of(list(values))
                rows = [(None, None, None) if v is missing else property_columns._split_value(v) for v in values]
                for k in range(3):
                    want = [r[k] for r in rows]
                    column = None if got is None else got[k]
                    assert (column or [None] * len(values)) == want, (values, k, got)


def test_funnels_retention_and_insights_read_the_columns(tmp_path: Path) -> None:
    """Their `where` and `on` read a slotted key from its column: with the column doctored (never so in a
    real store), the answers show the column's value, not the JSON's."""
    data_dir = tmp_path / "data"
    records = [{"s": f"s{i % 3}", "n": i} for i in range(6)]
    _write_old_store(data_dir, records)
    conn = _db(data_dir)
    try:
        property_columns.migrate(conn)
        slot = dict(conn.execute("SELECT name, slot FROM property_slots").fetchall())["s"]
        ps = property_columns.columns(slot)[0]
        conn.execute(f"UPDATE events SET {ps} = 'col-' || {ps}")
    finally:
        conn.close()
    server = ServerProcess(data_dir).start()
    try:
        dates = {"project_id": PROJECT_ID, "from_date": DAY, "to_date": DAY}
        body = {"name": "f", "steps": [{"event": "old", "where": 'properties["s"] == "col-s1"'}, {"event": "old"}]}
        fid = httpx.post(f"{server.url}/api/app/projects/{PROJECT_ID}/funnels", json=body, auth=AUTH).json()
        params = {**dates, "funnel_id": fid["results"]["funnel_id"], "on": 'properties["s"]'}
        r = httpx.get(f"{server.url}/api/query/funnels", params=params, auth=AUTH)
        assert r.status_code == 200, r.text
        day = r.json()["data"][DAY]
        assert day["$overall"][0]["count"] == 2  # u1 and u4, under the column's value
        assert set(day) == {"$overall", "col-s1"}, day
        r = httpx.get(
            f"{server.url}/api/query/retention",
            params={**dates, "born_event": "old", "on": 'properties["s"]', "born_where": 'properties["n"] >= 0'},
            auth=AUTH,
        )
        assert r.status_code == 200, r.text
        assert set(r.json()) >= {"col-s0", "col-s1", "col-s2"}, r.json()
        query = {"event": "old", "from_date": DAY, "to_date": DAY, "unit": "day", "on": 'properties["s"]'}
        saved = httpx.post(
            f"{server.url}/api/app/projects/{PROJECT_ID}/bookmarks", json={"name": "b", "query": query}, auth=AUTH
        ).json()["results"]
        r = httpx.get(
            f"{server.url}/api/query/insights", params={"project_id": PROJECT_ID, "bookmark_id": saved["id"]}, auth=AUTH
        )
        assert r.status_code == 200, r.text
        assert set(r.json()["series"]["old"]) == {"col-s0", "col-s1", "col-s2"}, r.json()
    finally:
        server.stop()
