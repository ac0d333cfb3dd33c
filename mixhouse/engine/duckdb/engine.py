"""The embedded engine: one DuckDB file in the data dir, written by one thread, read by many."""

from __future__ import annotations

import itertools
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from mixhouse.domain.export import ExportQuery
from mixhouse.domain.profiles import ProfileUpdate, apply_update
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine import kernels
from mixhouse.engine.duckdb import identity
from mixhouse.engine.duckdb.deadline import interrupt_at_deadline
from mixhouse.engine.duckdb.dedup import backfill_superseded, mark_superseded
from mixhouse.engine.duckdb.localtime import offset_ms_sql
from mixhouse.engine.duckdb.schema import SCHEMA, add_user_keys, user_key_sql
from mixhouse.engine.duckdb.writer import GroupCommitWriter
from mixhouse.private import private_dir, restrict_existing

EXPORT_BATCH_ROWS = 20_000
EXPORT_WINDOW_ROWS = 200_000
_HOUR_MS = 3_600_000


class DuckDBEngine:
    def __init__(self, data_dir: Path, *, memory_limit: str = "2GB") -> None:
        private_dir(data_dir)
        restrict_existing(data_dir, ("events.duckdb", "events.duckdb.wal", "tmp"))
        self._db = duckdb.connect(str(data_dir / "events.duckdb"))
        self._db.execute("SET TimeZone = 'UTC'")
        self._db.execute(f"SET memory_limit = '{memory_limit}'")
        self._db.execute(f"SET temp_directory = '{data_dir / 'tmp'}'")
        self._db.execute("SET preserve_insertion_order = false")
        self._db.execute(SCHEMA)
        add_user_keys(self._db)
        self._local = threading.local()
        row = self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        self._next_seq = int(row[0]) + 1 if row else 1
        self._write_conn = self._db.cursor()
        backfill_superseded(self._write_conn)
        self._writer = GroupCommitWriter(self._write_group, disk_path=data_dir)
        # Compile (or load) the per-user kernels now rather than in the first funnel query.
        kernels.warm_in_background()

    # -- connections ----------------------------------------------------------------------------

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A connection for the calling thread (DuckDB connections are not shared across threads)."""
        conn: duckdb.DuckDBPyConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._db.cursor()
            conn.execute("SET TimeZone = 'UTC'")
            self._local.conn = conn
        return conn

    # -- writes ---------------------------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> Future[None]:
        return self._writer.submit(batch)

    @property
    def pending_rows(self) -> int:
        return self._writer.pending_rows

    def _write_group(self, batches: list[WriteBatch]) -> None:
        conn = self._write_conn
        events = [e for b in batches for e in b.events]
        conn.execute("BEGIN TRANSACTION")
        try:
            if events:
                first = self._next_seq
                table = pa.table(
                    {
                        "project_id": pa.array([e.project_id for e in events], pa.int64()),
                        "seq": pa.array(range(first, first + len(events)), pa.int64()),
                        "time_ms": pa.array([e.time_ms for e in events], pa.int64()),
                        "event": pa.array([e.event for e in events], pa.string()),
                        "distinct_id": pa.array([e.distinct_id for e in events], pa.string()),
                        "insert_id": pa.array([e.insert_id for e in events], pa.string()),
                        "properties": pa.array([e.properties for e in events], pa.binary()).cast(pa.string()),
                    }
                )
                conn.register("incoming_events", table)
                conn.execute(f"INSERT INTO events SELECT *, {user_key_sql('distinct_id')} FROM incoming_events")
                mark_superseded(conn, "incoming_events", events)
                conn.unregister("incoming_events")
                # The identity map changes in the same transaction as the events that carry its links.
                links = [(e.project_id, e.identity) for e in events if e.identity is not None]
                if links:
                    identity.apply_links(conn, links)
            profile_updates = identity.resolve_profile_updates(conn, [u for b in batches for u in b.profile_updates])
            self._apply_profiles(conn, profile_updates, group=False)
            self._apply_profiles(conn, [u for b in batches for u in b.group_updates], group=True)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._next_seq += len(events)

    def _apply_profiles(self, conn: duckdb.DuckDBPyConnection, updates: list[ProfileUpdate], *, group: bool) -> None:
        if not updates:
            return
        table = "group_profiles" if group else "profiles"
        key_cols = ("project_id", "group_key", "group_id") if group else ("project_id", "distinct_id")
        keys = sorted({(u.project_id, *u.key) for u in updates})
        key_table = pa.table({col: [k[i] for k in keys] for i, col in enumerate(key_cols)})
        conn.register("wanted_keys", key_table)
        join = " AND ".join(f"t.{c} = w.{c}" for c in key_cols)
        rows = conn.execute(
            f"SELECT {', '.join('t.' + c for c in key_cols)}, t.properties FROM {table} t JOIN wanted_keys w ON {join}"
        ).fetchall()
        conn.unregister("wanted_keys")
        state: dict[tuple[Any, ...], dict[str, Any] | None] = {tuple(r[:-1]): orjson.loads(r[-1]) for r in rows}
        touched_ms: dict[tuple[Any, ...], int] = {}
        for update in updates:  # in arrival order
            key = (update.project_id, *update.key)
            state[key] = apply_update(state.get(key), update)
            touched_ms[key] = update.time_ms
        placeholders = " AND ".join(f"{c} = ?" for c in key_cols)
        live = [(k, v) for k, v in state.items() if k in touched_ms and v is not None]
        gone = [k for k, v in state.items() if k in touched_ms and v is None]
        if gone:
            conn.executemany(f"DELETE FROM {table} WHERE {placeholders}", [list(k) for k in gone])
        if live:
            columns: dict[str, Any] = {col: [k[i] for k, _ in live] for i, col in enumerate(key_cols)}
            columns["properties"] = [orjson.dumps(v).decode() for _, v in live]
            columns["updated_ms"] = [touched_ms[k] for k, _ in live]
            conn.register("incoming_profiles", pa.table(columns))
            conn.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM incoming_profiles")
            conn.unregister("incoming_profiles")

    # -- reads ----------------------------------------------------------------------------------

    def export_lines(self, query: ExportQuery, where_sql: str | None = None) -> Iterator[bytes]:
        """`where_sql` is a compiled filter over the alias `e` (see `export_scope`)."""
        if query.shift_to_project_timezone:
            # Older Mixpanel projects export wall-clock time in the project zone as if it were UTC.
            shifted = (
                f"(e.time_ms + {offset_ms_sql('e.time_ms', query.project.timezone, query.start_ms, query.end_ms)})"
            )
        else:
            shifted = "e.time_ms"
        time_sql = shifted if query.time_in_ms else f"({shifted} // 1000)"
        params: dict[str, Any] = {"project": query.project.id, "start": query.start_ms, "end": query.end_ms}
        filters = ["s.project_id = $project", "s.time_ms >= $start", "s.time_ms < $end"]
        if query.events is not None:
            filters.append("list_contains($events, s.event)")
            params["events"] = list(query.events)
        outer = f"WHERE ({where_sql})" if where_sql else ""
        # Rows show their canonical id (https://developer.mixpanel.com/reference/raw-event-export) — also to `where`, so that a user's whole
        # history is found by the id users are known by — and re-attributed rows keep the id they were
        # sent with in $distinct_id_before_identity.
        sql = f"""
            SELECT '{{"event":' || to_json(e.event) || ',"properties":{{"time":' || CAST({time_sql} AS VARCHAR)
                   || ',"distinct_id":' || to_json(e.distinct_id)
                   || CASE WHEN e.distinct_id = e.original_distinct_id THEN ''
                           ELSE ',"$distinct_id_before_identity":' || to_json(e.original_distinct_id) END
                   || CASE WHEN e.properties = '{{}}' THEN '}}' ELSE ',' || substr(e.properties, 2) END
                   || '}}' || chr(10) AS line
            FROM (
                SELECT s.seq, s.time_ms, s.event, coalesce(m.canonical_id, s.distinct_id) AS distinct_id,
                       s.distinct_id AS original_distinct_id, s.properties
                FROM events s
                LEFT JOIN identity_map m ON m.project_id = s.project_id AND m.distinct_id = s.distinct_id
                WHERE {" AND ".join(filters)} AND s.time_ms >= $wstart AND s.time_ms < $wend
            ) e {outer}
            ORDER BY e.time_ms, e.seq LIMIT $limit
        """
        # A connection of its own: the generator is consumed across threads of the server's pool.
        conn = self._db.cursor()
        try:
            conn.execute("SET TimeZone = 'UTC'")
            remaining = query.limit if query.limit is not None else 2**62
            # One sorted query per window of at most EXPORT_WINDOW_ROWS rows: a sort holds one window at a
            # time, so memory stays flat however many rows the export has.
            counts = conn.execute(
                f"SELECT s.time_ms // {_HOUR_MS} AS h, count(*) FROM events s WHERE {' AND '.join(filters)}"
                " GROUP BY h ORDER BY h",
                params,
            ).fetchall()
            for wstart, wend in export_windows(counts, query.start_ms, query.end_ms, EXPORT_WINDOW_ROWS):
                if remaining <= 0:
                    break
                window = {**params, "wstart": wstart, "wend": wend, "limit": remaining}
                for batch in conn.sql(sql, params=window).to_arrow_reader(EXPORT_BATCH_ROWS):
                    remaining -= len(batch)
                    yield _concat_strings(batch.column(0))
        finally:
            conn.close()

    def query(self, spec: Any) -> Any:
        """Run an analysis: the function registered for the spec's type, on this thread's connection."""
        from mixhouse.engine.duckdb.queries import HANDLERS

        handler = HANDLERS.get(type(spec))
        if handler is None:
            raise TypeError(f"the DuckDB engine has no handler for {type(spec).__name__}")
        conn = self.reader()
        with interrupt_at_deadline(conn):  # the request's deadline (project rate limits) interrupts DuckDB
            return handler(conn, spec)

    def profile(self, project_id: int, distinct_id: str) -> dict[str, object] | None:
        # fetchall, not fetchone: a half-read result would block the next statement on this connection.
        rows = (
            self.reader()
            .execute(
                "SELECT properties FROM profiles WHERE project_id = ? AND distinct_id = ?",
                [project_id, distinct_id],
            )
            .fetchall()
        )
        return orjson.loads(rows[0][0]) if rows else None

    def group_profile(self, project_id: int, group_key: str, group_id: str) -> dict[str, object] | None:
        rows = (
            self.reader()
            .execute(
                "SELECT properties FROM group_profiles WHERE project_id = ? AND group_key = ? AND group_id = ?",
                [project_id, group_key, group_id],
            )
            .fetchall()
        )
        return orjson.loads(rows[0][0]) if rows else None

    def health(self) -> list[str]:
        """What keeps this engine from taking writes now (empty: ready)."""
        return self._writer.health()

    def warming(self) -> list[str]:
        """What the engine is still preparing: queries that need it wait for it (within their deadline)."""
        return [] if kernels.ready() else ["compiling the query kernels (once per install): funnels wait for them"]

    def close(self) -> None:
        self._writer.close()
        self._write_conn.close()
        self._db.close()


def _concat_strings(column: pa.Array) -> bytes:
    """The bytes of all strings of an Arrow string column, back to back, without per-row Python."""
    if len(column) == 0:
        return b""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        fmt, width = ("<i", 4) if pa.types.is_string(column.type) else ("<q", 8)
        offsets, data = column.buffers()[1], column.buffers()[2]
        start = struct.unpack_from(fmt, offsets, column.offset * width)[0]
        end = struct.unpack_from(fmt, offsets, (column.offset + len(column)) * width)[0]
        return bytes(memoryview(data)[start:end])
    return "".join(column.to_pylist()).encode()


def export_windows(
    hour_counts: list[tuple[int, int]], start_ms: int, end_ms: int, max_rows: int
) -> list[tuple[int, int]]:
    """Back-to-back [start, end) spans covering [start_ms, end_ms), each holding at most `max_rows` rows
    unless one hour alone holds more (hour_counts: (epoch hour, rows), ascending). No gaps, so a row that
    arrives while the export runs is never skipped between two windows."""
    splits: list[int] = []
    rows = 0
    for hour, n in hour_counts:
        if rows and rows + n > max_rows:
            splits.append(max(hour * _HOUR_MS, start_ms))
            rows = 0
        rows += n
    bounds = [start_ms, *splits, end_ms]
    return list(itertools.pairwise(bounds))
