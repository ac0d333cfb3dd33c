"""The DuckDB engine's property key counts (engine/duckdb/property_counts.py): what the writer keeps, with
the events past its watermark counted from their rows, equals a recount of the stored events after writes
(counted and folded in within a write or at a pause) and after deletions on both sides of the watermark;
and an older store gets them built by its upgrade, also when killed midway."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import orjson
import pytest

from mixhouse.domain import columns as cols
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import migrations, property_counts
from mixhouse.engine.duckdb.engine import DuckDBEngine
from tests.test_import_workers import plain
from tests.test_ingest_batch_path import CTX
from tests.test_ingest_batch_path import SIMPLIFIED as PROJECT
from tests.test_upgrade import v1_data_dir, version_of

T0_MS = 1_700_000_000_000
# A recount by the plain definition (every row's keys unnested), apart from the grouped SQL the counts use.
RECOUNT = f"""
    SELECT project_id, {property_counts.hour_sql("time_ms")} AS hour, event, name, count(*) AS n
    FROM (SELECT project_id, time_ms, event, unnest(json_keys(properties)) AS name FROM events)
    GROUP BY ALL ORDER BY ALL
"""
TAIL = f"(SELECT * FROM events WHERE seq > {property_counts.THROUGH_SQL})"
KEPT = f"""
    SELECT project_id, hour, event, name, sum(n)::BIGINT AS n FROM (
        SELECT * FROM property_counts UNION ALL SELECT * FROM property_counts_recent
        UNION ALL {property_counts._counts_sql(TAIL)})
    GROUP BY ALL HAVING sum(n) <> 0 ORDER BY ALL
"""
THROUGH = f"SELECT {property_counts.THROUGH_SQL}"


def _events(first: int, n: int) -> list[StoredEvent]:
    out = []
    for i in range(first, first + n):
        props = {f"k{j}": [i, "x", None, {"a": 1}][j % 4] for j in range(i % 7)}
        # Times on both sides of the epoch: hours are floored, not truncated.
        time_ms = T0_MS * (1 if i % 5 else -1) + i * 977_000
        out.append(StoredEvent(1 + i % 2, time_ms, f"e{i % 3}", f"u{i}", f"i{i}", orjson.dumps(props)))
    return out


def _kept(conn: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return conn.execute(KEPT).fetchall()


def test_the_writer_keeps_the_counts_of_a_recount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(property_counts, "COUNT_EVENTS", 50)  # counted within a write every other batch
    monkeypatch.setattr(property_counts, "COMPACT_ROWS", 200)  # and folded in now and then
    engine = DuckDBEngine(tmp_path / "data", idle_checkpoint_seconds=3600)
    try:
        for first in range(0, 270, 30):
            engine.submit(WriteBatch(events=_events(first, 30))).result()
        conn = engine.reader()
        assert conn.execute(THROUGH).fetchall() == [(240,)]  # counted at 60, 120, 180 and 240 events
        assert conn.execute(f"SELECT count(*) FROM {TAIL}").fetchall() == [(30,)]
        recent = conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()[0][0]
        assert recent < 200 + 60 * 7  # what is left is less than a fold and a count
        assert conn.execute("SELECT count(*) FROM property_counts").fetchall()[0][0] > 0  # folded in a write
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        engine.checkpoint_when_idle()  # the pause counts the rest and folds everything in
        assert conn.execute(THROUGH).fetchall() == [(270,)]
        assert conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()[0][0] == 0
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
    finally:
        engine.close()


def test_deletions_on_both_sides_of_the_watermark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deletion subtracts only the rows the counts cover; the rows past the watermark leave the tail."""
    monkeypatch.setattr(property_counts, "COUNT_EVENTS", 100)
    engine = DuckDBEngine(tmp_path / "data", idle_checkpoint_seconds=3600)
    try:
        for first in range(0, 150, 50):
            engine.submit(WriteBatch(events=_events(first, 50))).result()
        conn = engine.reader()
        assert conn.execute(THROUGH).fetchall() == [(100,)]
        # Users u90..u129 have rows on both sides of seq 100 (seq = i + 1 for u{i}); insert ids likewise.
        engine.delete_users(1, [f"u{i}" for i in range(90, 130)])
        engine.delete_events(2, [f"i{i}" for i in range(60, 140)])
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        engine.checkpoint_when_idle()
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        assert conn.execute(f"SELECT count(*) FROM {TAIL}").fetchall() == [(0,)]
    finally:
        engine.close()


def _part(first: int, n: int) -> cols.EventColumns:
    """An /import batch of project PROJECT as columns, its times spread over several hours."""
    records = [plain(i) for i in range(first, first + n)]
    for i, record in enumerate(records):
        record["properties"]["time"] += (first + i) * 600  # (seconds) a new hour every 6 events
        if i % 4 == 0:
            del record["properties"]["$insert_id"]  # a server-added key some events lack
    part = cols.import_columns(orjson.dumps(records), PROJECT, CTX, locating=False)
    assert part is not None
    return part


def test_counts_given_by_column_batches_equal_a_recount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches handed over as columns bring their counts; the writer adds them instead of scanning those rows,
    scans only the rows written as rows in between, and forgets them before a deletion: the counts stay
    those of a recount throughout."""
    monkeypatch.setattr(property_counts, "COUNT_EVENTS", 60)
    engine = DuckDBEngine(tmp_path / "data", idle_checkpoint_seconds=3600)
    counter = engine._count_writer
    try:
        conn = engine.reader()
        engine.submit(WriteBatch(columns=[_part(0, 40)])).result()
        engine.submit(WriteBatch(columns=[_part(40, 30)])).result()
        # Only given counts are due: the count reads no event row.
        assert "json_keys" not in counter._new_counts(engine._write_conn, 70)
        engine.submit(WriteBatch(events=_events(0, 25))).result()  # counted: 70 given, the rest
        assert conn.execute(THROUGH).fetchall() == [(70,)]
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        # A group of rows and columns together: the rows before the given spans are scanned.
        rows = [dataclasses.replace(e, values=orjson.loads(e.properties)) for e in _events(25, 10)]  # as /track's
        engine.submit(WriteBatch(events=rows, columns=[_part(70, 20), _part(90, 15)])).result()
        assert [(a, b) for a, b, _ in counter._given] == [(106, 125), (126, 140)]
        assert "(seq BETWEEN 71 AND 105)" in counter._new_counts(engine._write_conn, 140)
        engine.submit(WriteBatch(columns=[_part(105, 10)])).result()  # counted before this write
        assert conn.execute(THROUGH).fetchall() == [(140,)]
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        # A deletion of rows whose counts were given and not yet added: they are scanned instead.
        engine.submit(WriteBatch(columns=[_part(115, 10)])).result()
        assert counter._given
        engine.delete_events(PROJECT.id, [f"ins-{i}" for i in range(105, 125)])
        assert not counter._given
        engine.checkpoint_when_idle()
        assert conn.execute(f"SELECT count(*) FROM {TAIL}").fetchall() == [(0,)]
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
    finally:
        engine.close()


def test_given_counts_past_their_bound_are_dropped_for_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts given for more than GIVEN_EVENTS events (a count that keeps failing) are not held without end:
    they are dropped, and the count scans those rows."""
    monkeypatch.setattr(property_counts, "COUNT_EVENTS", 1000)
    monkeypatch.setattr(property_counts, "GIVEN_EVENTS", 50)
    engine = DuckDBEngine(tmp_path / "data", idle_checkpoint_seconds=3600)
    counter = engine._count_writer
    try:
        engine.submit(WriteBatch(columns=[_part(0, 30)])).result()
        assert [(a, b) for a, b, _ in counter._given] == [(1, 30)]
        engine.submit(WriteBatch(columns=[_part(30, 30)])).result()  # 60 > 50: all dropped
        assert counter._given == []
        engine.submit(WriteBatch(columns=[_part(60, 20)])).result()  # kept again
        assert [(a, b) for a, b, _ in counter._given] == [(61, 80)]
        assert "(seq BETWEEN 1 AND 60)" in counter._new_counts(engine._write_conn, 80)
        engine.checkpoint_when_idle()
        conn = engine.reader()
        assert conn.execute(THROUGH).fetchall() == [(80,)]
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
    finally:
        engine.close()


_KILLED_IN_STEP_3 = textwrap.dedent(
    """
    import os, signal, sys
    import duckdb
    from mixhouse.engine.duckdb import migrations, property_counts

    def rebuild_then_die(conn):
        property_counts.rebuild(conn)
        os.kill(os.getpid(), signal.SIGKILL)  # inside the step's transaction, before its commit

    steps = [m if m.version != 3 else migrations.Migration(3, m.description, rebuild_then_die)
             for m in migrations.MIGRATIONS]
    migrations.open_store(duckdb.connect(sys.argv[1]), migrations=steps)
    """
)


def test_an_upgrade_builds_the_counts_and_survives_kill_9(tmp_path: Path) -> None:
    data_dir = v1_data_dir(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_IN_STEP_3, str(data_dir / "events.duckdb")],
        env={**os.environ},
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert version_of(data_dir) == 2  # step 3 rolled back, step 2 kept
    conn = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
    try:
        assert conn.execute("SELECT count(*) FROM property_counts").fetchall() == [(0,)]
    finally:
        conn.close()
    DuckDBEngine(data_dir).close()  # runs step 3 again
    assert version_of(data_dir) == migrations.CURRENT_VERSION
    conn = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
    try:
        kept = _kept(conn)
        assert kept and kept == conn.execute(RECOUNT).fetchall()
    finally:
        conn.close()


def test_a_version_3_store_gets_a_watermark_that_covers_every_event(tmp_path: Path) -> None:
    """Version 3's writer counted every commit: the step to version 4 marks all stored events counted
    (else a reader would count them twice: from the counts and from their rows)."""
    data_dir = v1_data_dir(tmp_path)
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    try:
        migrations.open_store(conn, migrations=migrations.MIGRATIONS[:2])  # to version 3
        conn.execute("DROP TABLE property_counts_through")  # as version 3 wrote it
        assert conn.execute("SELECT count(*) FROM events").fetchall()[0][0] > 0
    finally:
        conn.close()
    assert version_of(data_dir) == 3
    DuckDBEngine(data_dir).close()
    assert version_of(data_dir) == migrations.CURRENT_VERSION
    conn = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
    try:
        assert conn.execute(THROUGH).fetchall() == conn.execute("SELECT max(seq) FROM events").fetchall()
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
    finally:
        conn.close()


def test_a_count_that_fails_never_fails_a_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watermark's count runs apart from the write: when it fails (here: SQL DuckDB refuses; in CI: out
    of memory), the write is stored, the watermark stays, readers still agree with a recount, and the count
    is tried again COUNT_EVENTS events later."""
    monkeypatch.setattr(property_counts, "COUNT_EVENTS", 50)
    engine = DuckDBEngine(tmp_path / "data", idle_checkpoint_seconds=3600)
    try:
        working = property_counts._counts_sql
        monkeypatch.setattr(property_counts, "_counts_sql", lambda rows, sign=1: "SELECT no_such_column")
        for first in range(0, 90, 30):
            engine.submit(WriteBatch(events=_events(first, 30))).result()  # the count at 60 fails
        conn = engine.reader()
        assert conn.execute("SELECT count(*) FROM events").fetchall() == [(90,)]
        assert conn.execute(THROUGH).fetchall() == [(0,)]
        monkeypatch.setattr(property_counts, "_counts_sql", working)
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        engine.submit(WriteBatch(events=_events(90, 30))).result()  # 90 < 60 + 50: not yet again
        assert conn.execute(THROUGH).fetchall() == [(0,)]
        engine.submit(WriteBatch(events=_events(120, 30))).result()  # before it: 120 >= 110, counted
        assert conn.execute(THROUGH).fetchall() == [(120,)]
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
    finally:
        engine.close()


def test_a_count_before_a_write_that_fails_stands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The count runs in a transaction of its own before the write that finds it due: when that write fails
    and is rolled back, the count (of events committed before it) stands, and the counts still equal a
    recount, also after a deletion."""
    monkeypatch.setattr(property_counts, "COUNT_EVENTS", 50)
    engine = DuckDBEngine(tmp_path / "data", idle_checkpoint_seconds=3600)
    try:
        for first in range(0, 60, 30):
            engine.submit(WriteBatch(events=_events(first, 30))).result()
        conn = engine.reader()
        assert conn.execute(THROUGH).fetchall() == [(0,)]  # 60 events past it: the next write counts them

        def fail(*_args: object, **_kwargs: object) -> None:
            raise ValueError("a write that fails after its insert")

        monkeypatch.setattr(engine, "_apply_profiles", fail)
        with pytest.raises(ValueError, match="fails after its insert"):
            engine._write_group([WriteBatch(events=_events(60, 30))])
        monkeypatch.undo()
        assert conn.execute("SELECT count(*) FROM events").fetchall() == [(60,)]  # rolled back
        assert conn.execute(THROUGH).fetchall() == [(60,)]  # counted before it, committed on its own
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        engine.submit(WriteBatch(events=_events(60, 30))).result()
        engine.delete_users(1, [f"u{i}" for i in range(40, 80)])
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
    finally:
        engine.close()
