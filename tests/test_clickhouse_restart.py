"""What the ClickHouse engine repairs when it starts on a chDB store (each test stops and starts an engine on
one folder): staging tables of exports a crash left behind are dropped, and a store written before the
`dedup_keys` table existed gets it filled from its events, so that a copy arriving afterwards of an event
stored before is still found (mixhouse/engine/clickhouse/dedup.py)."""

from __future__ import annotations

from pathlib import Path

from mixhouse.compose import open_engine
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.clickhouse import engine as ch
from mixhouse.engine.clickhouse.engine import ClickHouseEngine
from mixhouse.settings import load_settings

T = 1_704_103_200_000  # 2024-01-01T10:00:00Z


def _open(data_dir: Path) -> ClickHouseEngine:
    engine = open_engine(load_settings({"engine": "chdb", "data_dir": data_dir}, env={}))
    assert isinstance(engine, ClickHouseEngine)
    return engine


def _tables(engine: ClickHouseEngine) -> set[str]:
    rows = engine.store.rows("SELECT name FROM system.tables WHERE database = {db:String}", {"db": engine.db})
    return {str(r["name"]) for r in rows}


def test_a_staging_table_left_by_a_crash_is_dropped_at_the_next_start(tmp_path: Path) -> None:
    engine = _open(tmp_path)
    for name in (f"{ch.STAGING_PREFIX}left", "kept_by_someone"):
        engine.store.driver.command(f"CREATE TABLE {engine.db}.{name} (t Int64) ENGINE = MergeTree ORDER BY t")
    engine.close()
    engine = _open(tmp_path)
    try:
        tables = _tables(engine)
        assert f"{ch.STAGING_PREFIX}left" not in tables
        assert "kept_by_someone" in tables
    finally:
        engine.close()


def test_a_store_without_dedup_keys_gets_them_from_its_events(tmp_path: Path) -> None:
    engine = _open(tmp_path)
    engine.submit(
        WriteBatch(
            events=[
                StoredEvent(1, T, "e", "u", "a", b'{"n":1}'),
                StoredEvent(1, T + 1, "e", "v", "b", b'{"n":2}'),
                StoredEvent(1, T + 2, "e", "w", None, b'{"n":3}'),
            ]
        )
    ).result()
    # a store from before the table: its events, no dedup keys
    engine.store.driver.command(f"DROP TABLE {engine.db}.dedup_keys SYNC")
    # a fill interrupted by a crash leaves its table half full under another name
    engine.store.driver.command(f"CREATE TABLE {engine.db}.dedup_keys_backfill (x Int64) ENGINE = MergeTree ORDER BY x")
    engine.close()

    engine = _open(tmp_path)
    try:
        assert "dedup_keys" in _tables(engine)
        assert "dedup_keys_backfill" not in _tables(engine)
        rows = engine.store.rows(f"SELECT count() AS n FROM {engine.db}.dedup_keys")
        assert rows[0]["n"] == 2  # the events with an insert id
        engine.submit(WriteBatch(events=[StoredEvent(1, T, "e", "u", "a", b'{"n":4}')])).result()
        hidden = engine.store.rows(
            f"""SELECT properties FROM {engine.db}.events
                WHERE seq IN (SELECT seq FROM {engine.db}.superseded_events WHERE project_id = 1)"""
        )
        assert [r["properties"] for r in hidden] == ['{"n":1}']
    finally:
        engine.close()
