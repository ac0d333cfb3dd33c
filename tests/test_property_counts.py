"""The DuckDB engine's property key counts (engine/duckdb/property_counts.py): what the writer keeps equals
a recount of the stored events after writes (folded in within a write or at a pause), from either of its
two ways of counting, and an older store gets them built by its upgrade, also when killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import orjson
import pytest

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import migrations, property_counts
from mixhouse.engine.duckdb.engine import DuckDBEngine
from tests.test_upgrade import v1_data_dir, version_of

T0_MS = 1_700_000_000_000
RECOUNT = f"""
    SELECT project_id, hour, event, name, n FROM ({property_counts._counts_sql("events")}) ORDER BY ALL
"""
KEPT = """
    SELECT project_id, hour, event, name, sum(n)::BIGINT AS n FROM (
        SELECT * FROM property_counts UNION ALL SELECT * FROM property_counts_recent)
    GROUP BY ALL HAVING sum(n) <> 0 ORDER BY ALL
"""


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
    monkeypatch.setattr(property_counts, "COMPACT_ROWS", 200)  # folded within a write now and then
    engine = DuckDBEngine(tmp_path / "data", idle_checkpoint_seconds=3600)
    try:
        for first in range(0, 300, 30):
            engine.submit(WriteBatch(events=_events(first, 30))).result()
        conn = engine.reader()
        recent = conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()[0][0]
        assert 0 < recent < 200 + 30 * 7  # what is left is less than a fold and a batch
        assert conn.execute("SELECT count(*) FROM property_counts").fetchall()[0][0] > 0  # folded in a write
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
        engine.checkpoint_when_idle()  # the pause folds the rest in
        assert conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()[0][0] == 0
        assert _kept(conn) == conn.execute(RECOUNT).fetchall()
    finally:
        engine.close()


def test_counting_in_sql_gives_the_same_rows() -> None:
    """Without parsed documents the writer counts with json_keys over the inserted rows."""
    conn = duckdb.connect()
    conn.execute(migrations.SCHEMA)
    events = _events(0, 200)
    conn.executemany(
        "INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[e.project_id, i, e.time_ms, e.event, e.distinct_id, e.insert_id, e.properties.decode()] for i, e in enumerate(events)],
    )  # fmt: skip
    property_counts.CountWriter(conn).record(conn, events, None, "(SELECT * FROM events WHERE seq < 100)")
    property_counts.CountWriter(conn).record(
        conn, events[100:], [orjson.loads(e.properties) for e in events[100:]], "unused"
    )
    assert _kept(conn) == conn.execute(RECOUNT).fetchall()


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
