"""Copy an embedded data dir's event store (`events.duckdb`) into the ClickHouse engine, table by table, in
batches, resumable after a crash without duplicates.

Every table the embedded engine stores is copied row for row: events with their sequence numbers, ids as
sent and properties as stored (so `/export` writes the same bytes), the `$insert_id` dedup marks, user and
group profiles, and the identity tables (map, Simplified devices, Original links). `Engine.scan` is not the
source: it yields events deduplicated and identity-resolved, which a copy must not be. The target is opened
as the ClickHouse engine (so its DDL, cluster DDL included, is the engine's) and written through its store
with an `insert_deduplication_token` per batch.

Resuming: after each batch is inserted the position is written (atomically) to `migrate-<engine>.json` in
the data dir. A run killed between an insert and its position write inserts the same batch again on the
next run: same rows, same token, so ClickHouse stores it once. Batches are deterministic (events by
sequence range, the small tables by their key order), and the source is read-only, so a rerun reads the
same batches. The catalog (SQLite) and every other file of the data dir stay where they are."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson

from mixhouse.engine.clickhouse import dedup
from mixhouse.engine.clickhouse.engine import ClickHouseEngine
from mixhouse.errors import MixhouseError

log = logging.getLogger("mixhouse.migrate")

EVENTS_FILE = "events.duckdb"
_REPLACING = ("version", "deleted")  # a copied row is version 1 of its key: any later live write wins


class MigrateError(MixhouseError):
    """The migration cannot start or go on (the message says why)."""

    code = "migrate_refused"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]  # read from DuckDB and written to ClickHouse under the same names
    order: str  # a total order of the source rows: batches are the same on every run
    replacing: bool = True  # a ReplacingMergeTree(version, deleted) on ClickHouse


TABLES = (
    Table(
        "identity_links",
        ("project_id", "kind", "time_ms", "primary_id", "other_id"),
        "project_id, primary_id, other_id, kind, time_ms",
    ),
    Table(
        "identity_devices", ("project_id", "device_distinct_id", "user_id", "time_ms"), "project_id, device_distinct_id"
    ),
    Table("identity_map", ("project_id", "distinct_id", "canonical_id"), "project_id, distinct_id"),
    Table("profiles", ("project_id", "distinct_id", "properties", "updated_ms"), "project_id, distinct_id"),
    Table(
        "group_profiles",
        ("project_id", "group_key", "group_id", "properties", "updated_ms"),
        "project_id, group_key, group_id",
    ),
    Table("superseded_events", ("project_id", "seq"), "project_id, seq", replacing=False),
)
EVENT_COLUMNS = ("project_id", "seq", "time_ms", "event", "distinct_id", "insert_id", "properties")


class Progress:
    """Where the copy is, in `migrate-<engine>.json`: per table, rows (or, for events, the next seq) done."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.state: dict[str, Any] = {"target": target, "tables": {}, "done": False}
        if path.exists():
            saved = orjson.loads(path.read_bytes())
            if saved.get("target") != target:
                raise MigrateError(
                    f"{path} records a migration to {saved.get('target')!r}, not {target!r}: remove it to start over"
                )
            self.state = saved

    def get(self, table: str) -> int:
        return int(self.state["tables"].get(table, 0))

    def save(self, table: str | None = None, position: int | None = None, *, done: bool = False) -> None:
        if table is not None:
            self.state["tables"][table] = position
        self.state["done"] = done
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(self.state))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


def open_source(data_dir: Path) -> duckdb.DuckDBPyConnection:
    path = data_dir / EVENTS_FILE
    if not path.is_file():
        raise MigrateError(f"{data_dir} holds no embedded event store ({EVENTS_FILE})")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0]
        raise MigrateError(f"the embedded store cannot be read (stop the server using it first): {reason}") from exc


def migrate(
    source: duckdb.DuckDBPyConnection,
    target: ClickHouseEngine,
    progress: Progress,
    *,
    batch_rows: int = 100_000,
    after_batch: Callable[[], None] = lambda: None,
) -> dict[str, int]:
    """Copy every table not yet done; returns the rows copied by table in this run."""
    copied: dict[str, int] = {}
    for table in TABLES:
        copied[table.name] = _copy_table(source, target, progress, table, batch_rows, after_batch)
    copied["events"] = _copy_events(source, target, progress, batch_rows, after_batch)
    progress.save(done=True)
    return copied


def _count(source: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    row = source.execute(sql, params or []).fetchone()
    return int(row[0] or 0) if row else 0


def _copy_table(
    source: duckdb.DuckDBPyConnection,
    target: ClickHouseEngine,
    progress: Progress,
    table: Table,
    batch_rows: int,
    after_batch: Callable[[], None],
) -> int:
    total = _count(source, f"SELECT count(*) FROM {table.name}")
    done = progress.get(table.name)
    copied = 0
    columns = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" if c == "properties" else c for c in table.columns)
    while done < total:
        rows = source.execute(
            f"SELECT {columns} FROM {table.name} ORDER BY {table.order} LIMIT ? OFFSET ?", [batch_rows, done]
        ).fetchall()
        if not rows:
            break
        names = table.columns + (_REPLACING if table.replacing else ())
        extra = (1, 0) if table.replacing else ()
        target.store.insert(table.name, names, (tuple(r) + extra for r in rows))
        done += len(rows)
        copied += len(rows)
        after_batch()
        progress.save(table.name, done)
        log.info("migrate: %s %d/%d rows", table.name, done, total)
    return copied


def _copy_events(
    source: duckdb.DuckDBPyConnection,
    target: ClickHouseEngine,
    progress: Progress,
    batch_rows: int,
    after_batch: Callable[[], None],
) -> int:
    """Events by sequence range [seq, seq + batch_rows): each batch reads a contiguous slice of the table."""
    bounds = source.execute("SELECT min(seq), max(seq), count(*) FROM events").fetchone()
    assert bounds is not None
    if not bounds[2]:
        return 0
    lo, hi, total = int(bounds[0]), int(bounds[1]), int(bounds[2])
    next_seq = max(progress.get("events"), lo)
    done = _count(source, "SELECT count(*) FROM events WHERE seq < ?", [next_seq])
    copied, started = 0, time.monotonic()
    while next_seq <= hi:
        end = next_seq + batch_rows
        rows = source.execute(
            f"SELECT {', '.join(EVENT_COLUMNS[:-1])}, CAST(properties AS VARCHAR) FROM events"
            " WHERE seq >= ? AND seq < ? ORDER BY seq",
            [next_seq, end],
        ).fetchall()
        if rows:
            dedup.record_keys(target.store, rows)  # the engine's $insert_id look-up reads these first
            target.store.insert("events", EVENT_COLUMNS, rows)
        next_seq = end
        done += len(rows)
        copied += len(rows)
        after_batch()
        progress.save("events", next_seq)
        rate = copied / max(time.monotonic() - started, 1e-9)
        log.info("migrate: events %d/%d rows (%.0f%%, %.0f rows/s)", done, total, 100 * done / total, rate)
    return copied
