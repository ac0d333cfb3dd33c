"""The store after sustained ingestion (docs/operations.md, bench/bench_store.py): the WAL is folded into
the database file once writes pause, and DuckDB's memory is capped by a documented setting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.export import ExportQuery
from mixhouse.domain.project import Project
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.settings import load_settings


def batch(n: int) -> WriteBatch:
    return WriteBatch(
        events=[StoredEvent(1, 1_700_000_000_000 + i, "e", f"u{i}", f"m{i}", b'{"a":1}') for i in range(n)]
    )


def test_the_wal_is_checkpointed_once_writes_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXHOUSE_IDLE_CHECKPOINT_SECONDS", "0.3")
    engine = DuckDBEngine.from_settings(load_settings({"data_dir": tmp_path / "data"}))  # the environment set above
    try:
        engine.submit(batch(5000)).result()
        assert engine.wal_bytes() > 0  # far under DuckDB's own 16 MB threshold
        deadline = time.monotonic() + 10
        while engine.wal_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.wal_bytes() == 0
        row = engine.reader().execute("SELECT count(*) FROM events").fetchone()
        assert row == (5000,)
    finally:
        engine.close()


def test_duckdb_memory_is_capped_by_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXHOUSE_MEMORY_LIMIT", "300MB")
    engine = DuckDBEngine.from_settings(load_settings({"data_dir": tmp_path / "data"}))  # the environment set above
    try:
        row = engine.reader().execute("SELECT current_setting('memory_limit')").fetchone()
        assert row is not None and str(row[0]).replace(" ", "") in ("286.1MiB", "300.0MB", "300MB")
    finally:
        engine.close()


def test_the_funnel_kernels_keep_at_most_the_setting() -> None:
    """Resident memory after a large funnel stays near its peak by design (the kernels keep big arrays
    for the next query); MIXHOUSE_KERNEL_CACHE_BYTES bounds what they keep."""
    script = (
        "import numpy as np\n"
        "from mixhouse.engine.kernels import memory\n"
        "from mixhouse.settings import load_settings\n"
        "memory.set_limit(load_settings().kernel_cache_bytes)\n"  # what the engine does as it opens
        "assert memory.LIMIT_BYTES == 3 * 2**20, memory.LIMIT_BYTES\n"
        "memory.give(*[memory.take(2**18) for _ in range(4)])\n"  # 4 arrays of 2 MiB
        "print(sum(b.nbytes for b in memory._free))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "MIXHOUSE_KERNEL_CACHE_BYTES": str(3 * 2**20)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(done.stdout) == 2 * 2**20  # one 2 MiB array fits under 3 MiB, the others are freed


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_the_idle_store_is_reopened_after_the_setting_s_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows appended by the running process are scanned from their in-memory form until the database is
    reopened (docs/operations.md): once writes pause past MIXHOUSE_REOPEN_AFTER_ROWS new events, it is."""
    monkeypatch.setenv("MIXHOUSE_IDLE_CHECKPOINT_SECONDS", "0.3")
    monkeypatch.setenv("MIXHOUSE_REOPEN_AFTER_ROWS", "5000")
    engine = DuckDBEngine.from_settings(load_settings({"data_dir": tmp_path / "data"}))
    try:
        engine.submit(batch(4999)).result()
        assert _wait_for(lambda: engine.wal_bytes() == 0)  # checkpointed, one row short: not reopened
        assert engine.reopens == 0
        engine.submit(WriteBatch(events=[StoredEvent(1, 1_700_000_000_000, "e", "late", "late", b"{}")])).result()
        assert _wait_for(lambda: engine.reopens == 1)
        # The thread's reader is a connection of the reopened database, and sees every row.
        assert engine.reader().execute("SELECT count(*) FROM events").fetchone() == (5000,)
    finally:
        engine.close()


def test_a_stream_in_progress_holds_off_the_reopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXHOUSE_IDLE_CHECKPOINT_SECONDS", "0.2")
    monkeypatch.setenv("MIXHOUSE_REOPEN_AFTER_ROWS", "1000")
    engine = DuckDBEngine.from_settings(load_settings({"data_dir": tmp_path / "data"}))
    try:
        engine.submit(batch(30_000)).result()
        project = Project(1, "p", "t", "s", "k")
        stream = engine.export_lines(ExportQuery(project, 1_600_000_000_000, 1_800_000_000_000, None, None, None, True))
        first = next(stream)  # the export is under way on its own connection
        time.sleep(1.5)  # several idle periods pass: the checkpoint runs, the reopen waits
        assert engine.wal_bytes() == 0 and engine.reopens == 0
        lines = first + b"".join(stream)
        assert lines.count(b"\n") == 30_000  # the stream ended whole
        assert _wait_for(lambda: engine.reopens == 1)  # the end of the last read asked for it again
    finally:
        engine.close()
