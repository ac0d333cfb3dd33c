"""The store after sustained ingestion (docs/operations.md, bench/bench_store.py): the WAL is folded into
the database file once writes pause, and DuckDB's memory is capped by a documented setting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import DuckDBEngine


def batch(n: int) -> WriteBatch:
    return WriteBatch(
        events=[StoredEvent(1, 1_700_000_000_000 + i, "e", f"u{i}", f"m{i}", b'{"a":1}') for i in range(n)]
    )


def test_the_wal_is_checkpointed_once_writes_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXHOUSE_IDLE_CHECKPOINT_SECONDS", "0.3")
    engine = DuckDBEngine(tmp_path / "data")
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
    engine = DuckDBEngine(tmp_path / "data")
    try:
        row = engine.reader().execute("SELECT current_setting('memory_limit')").fetchone()
        assert row is not None and str(row[0]).replace(" ", "") in ("286.1MiB", "300.0MB", "300MB")
    finally:
        engine.close()
