"""The checkpoint threshold (docs/operations.md): the WAL size at which a commit also checkpoints, a
documented setting handed to DuckDB, tested on both sides of its edge with a real engine and the real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.errors import SettingsError
from mixhouse.settings import load_settings

ROWS = 2000


def batch(start: int) -> WriteBatch:
    return WriteBatch(
        events=[
            StoredEvent(1, 1_700_000_000_000 + i, "e", f"u{i}", f"m{i}", b'{"plan":"pro","n":%d}' % i)
            for i in range(start, start + ROWS)
        ]
    )


def engine_with(tmp_path: Path, threshold: str) -> DuckDBEngine:
    # The idle checkpoint is kept out of the way: only the commit's own checkpoint may fold the WAL in.
    env = {"MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES": threshold, "MIXHOUSE_IDLE_CHECKPOINT_SECONDS": "600"}
    return DuckDBEngine.from_settings(load_settings({"data_dir": tmp_path / "data"}, env=env))


def test_the_default_is_documented_and_reaches_duckdb(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path / "data"}, env={})
    assert settings.checkpoint_threshold_bytes == 256 * 1024 * 1024
    ops = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    assert "`MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES` | `268435456`" in ops
    engine = DuckDBEngine.from_settings(settings)
    try:
        row = engine.reader().execute("SELECT current_setting('checkpoint_threshold')").fetchall()
        assert row == [("256.0 MiB",)]
    finally:
        engine.close()


def test_a_commit_past_the_threshold_checkpoints_and_one_under_it_does_not(tmp_path: Path) -> None:
    # Measure one batch's WAL, then set the threshold just above and just below it.
    engine = engine_with(tmp_path / "measure", "1073741824")
    try:
        engine.submit(batch(0)).result()
        wal = engine.wal_bytes()
        assert wal > 0
    finally:
        engine.close()

    above = engine_with(tmp_path / "above", str(2 * wal))
    try:
        above.submit(batch(0)).result()
        assert above.wal_bytes() > 0  # under the threshold: the rows wait in the WAL
        above.submit(batch(ROWS)).result()  # past it: this commit checkpoints
        assert above.wal_bytes() == 0
        assert above.reader().execute("SELECT count(*) FROM events").fetchall() == [(2 * ROWS,)]
    finally:
        above.close()

    below = engine_with(tmp_path / "below", str(wal // 2))
    try:
        below.submit(batch(0)).result()
        assert below.wal_bytes() == 0
        assert below.reader().execute("SELECT count(*) FROM events").fetchall() == [(ROWS,)]
    finally:
        below.close()


@pytest.mark.parametrize("raw", ["0", "-1", "lots", "1.5"])
def test_a_threshold_that_cannot_be_used_stops_the_server(raw: str) -> None:
    with pytest.raises(
        SettingsError, match=f"MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES must be a positive integer, got '{raw}'"
    ):
        load_settings({}, env={"MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES": raw})


def test_the_smallest_threshold_checkpoints_every_commit(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, "1")
    try:
        for start in (0, ROWS):
            engine.submit(batch(start)).result()
            assert engine.wal_bytes() == 0
    finally:
        engine.close()
