"""The embedded engine: one DuckDB file in the data dir, written by one thread, read by many."""

from __future__ import annotations

import logging
import struct
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar, cast

import duckdb
import orjson
import pyarrow as pa

from mixhouse.domain.columns import EventColumns
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.export import ExportQuery
from mixhouse.domain.profiles import ProfileUpdate, apply_update
from mixhouse.domain.scan import ScanQuery
from mixhouse.domain.scan import windows as export_windows
from mixhouse.domain.spec import Spec
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine import kernels
from mixhouse.engine.base import CommitObserver, DeleteResult, EngineStats, UserData
from mixhouse.engine.common.lookups import lookup_reads
from mixhouse.engine.duckdb import deletes, identity, migrations, property_columns, property_counts
from mixhouse.engine.duckdb.backup import copy_database
from mixhouse.engine.duckdb.deadline import interrupt_at_deadline
from mixhouse.engine.duckdb.dedup import RETURNED_KEYS, SeenKeys, mark_superseded
from mixhouse.engine.duckdb.expressions import Scope, compile_filter
from mixhouse.engine.duckdb.localtime import offset_ms_sql
from mixhouse.engine.duckdb.lookups import LookupTables, lookup_joins
from mixhouse.engine.duckdb.mappings import identity_mappings as mapping_rows
from mixhouse.engine.duckdb.scan import scan as scan_rows
from mixhouse.engine.duckdb.schema import user_key_sql
from mixhouse.engine.duckdb.writer import GroupCommitWriter
from mixhouse.engine.kernels import memory as kernel_memory
from mixhouse.errors import Unavailable
from mixhouse.expr.ast import LookupRef
from mixhouse.lookup.binding import LookupSource, bind_and_load
from mixhouse.private import private_dir, restrict_existing
from mixhouse.settings import Settings

log = logging.getLogger(__name__)
R = TypeVar("R")
S = TypeVar("S")

DEFAULT_MEMORY_LIMIT = "2GB"
# DuckDB's own checkpoint_threshold (wal_autocheckpoint) default: the least WAL a checkpoint reserve counts.
DUCKDB_CHECKPOINT_THRESHOLD_BYTES = 16 * 1024 * 1024
# A commit that takes the WAL past this also checkpoints, inside the COMMIT, before any request of its
# group is acknowledged. At DuckDB's 16 MB that was every ~14th 2000-event /import batch, each checkpoint
# hundreds of milliseconds: the p99 acknowledgement (bench/bench_ingest.py). Larger, it happens seldom
# under sustained load, and the idle checkpoint folds the WAL in as soon as writes pause (docs/operations.md).
DEFAULT_CHECKPOINT_THRESHOLD_BYTES = 256 * 1024 * 1024
REOPEN_INTERVAL_SECONDS = 1.0
DEFAULT_IDLE_CHECKPOINT_SECONDS = 5.0
DEFAULT_REOPEN_AFTER_ROWS = 200_000
EXPORT_BATCH_ROWS = 10_000
EXPORT_WINDOW_ROWS = 50_000
_HOUR_MS = 3_600_000


def invalidates(exc: BaseException) -> bool:
    """DuckDB gave up on the database (a failed checkpoint, e.g. on a full disk): every later statement
    fails until the database is reopened."""
    return isinstance(exc, duckdb.FatalException) or "database has been invalidated" in str(exc)


class DuckDBEngine:
    """If DuckDB invalidates the database anyway (a disk filled by someone else mid-checkpoint), the
    engine says so in `health()`, answers every read and write with Unavailable (503, retryable), and a
    background thread reopens the file once free space is back over the writer's reserve. Nothing
    acknowledged is lost: an acknowledged write is in the WAL, which the reopen replays."""

    def __init__(
        self,
        data_dir: Path,
        *,
        memory_limit: str | None = None,
        idle_checkpoint_seconds: float = DEFAULT_IDLE_CHECKPOINT_SECONDS,
        disk_reserve_bytes: int | None = None,
        commit_observers: tuple[CommitObserver, ...] = (),
        delete_drill_pause_seconds: float = 0.0,
        lookups: LookupSource | None = None,
        reopen_after_rows: int = DEFAULT_REOPEN_AFTER_ROWS,
        migration_drill_pause_seconds: float = 0.0,
        checkpoint_threshold_bytes: int = DEFAULT_CHECKPOINT_THRESHOLD_BYTES,
    ) -> None:
        """`memory_limit`: DuckDB's (its buffer pool: caches, sorts, hash tables; beyond it, work spills
        to tmp/ in the data folder). Checkpoints once no write has arrived for `idle_checkpoint_seconds`.
        `disk_reserve_bytes`: see GroupCommitWriter. `reopen_after_rows`: see `checkpoint_when_idle` (0: never).
        `checkpoint_threshold_bytes`: the WAL size at which a commit also checkpoints (DuckDB's setting).
        The server opens it with `from_settings`."""
        private_dir(data_dir)
        self._delete_drill_pause_seconds = delete_drill_pause_seconds
        self._migration_drill_pause_seconds = migration_drill_pause_seconds
        restrict_existing(data_dir, ("events.duckdb", "events.duckdb.wal", "tmp"))
        self._data_dir = data_dir
        self._memory_limit = memory_limit or DEFAULT_MEMORY_LIMIT
        self._checkpoint_threshold_bytes = checkpoint_threshold_bytes
        self._local = threading.local()
        self._lock = threading.RLock()  # held while the database is used for writing or swapped
        self._generation = 0
        self._broken: str | None = None
        self._closed = False
        self._cursors: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self._lookups = LookupTables(lookups)  # lookup tables a query joins (engine/duckdb/lookups.py)
        # Reads in progress (a query, an export or scan stream, a user's data): the database is reopened
        # only when there are none, and new reads wait while it is.
        self._reads = 0
        self._reads_changed = threading.Condition()
        self._reopening = False
        self._reopen_wanted = False  # a reopen was held off by reads: the last of them asks for it again
        self._reopen_after_rows = reopen_after_rows
        self._appended_rows = 0  # events committed since the database was opened
        self.reopens = 0  # how many times the idle store was reopened to read its rows from the file
        self._open()
        self._writer = GroupCommitWriter(
            self._write_group,
            disk_path=data_dir,
            checkpoint_reserve=self.checkpoint_reserve_bytes,
            on_idle=self.checkpoint_when_idle,
            idle_seconds=idle_checkpoint_seconds,
            disk_reserve_bytes=disk_reserve_bytes,
            commit_observers=commit_observers,
        )
        # Compile (or load) the per-user kernels now rather than in the first funnel query.
        kernels.warm_in_background()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        commit_observers: tuple[CommitObserver, ...] = (),
        lookups: LookupSource | None = None,
    ) -> DuckDBEngine:
        kernel_memory.set_limit(settings.kernel_cache_bytes)
        return cls(
            settings.data_dir,
            lookups=lookups,
            memory_limit=settings.memory_limit,
            idle_checkpoint_seconds=settings.idle_checkpoint_seconds,
            disk_reserve_bytes=settings.disk_reserve_bytes,
            commit_observers=commit_observers,
            delete_drill_pause_seconds=settings.delete_drill_pause_seconds,
            reopen_after_rows=settings.reopen_after_rows,
            migration_drill_pause_seconds=settings.migration_drill_pause_seconds,
            checkpoint_threshold_bytes=settings.checkpoint_threshold_bytes,
        )

    def _open(self, *, keep_seen_keys: bool = False) -> None:
        """Open the database; `keep_seen_keys`: the writer's dedup filter still holds (an idle reopen)."""
        db = duckdb.connect(str(self._data_dir / "events.duckdb"))
        try:
            db.execute("SET TimeZone = 'UTC'")
            db.execute(f"SET memory_limit = '{self._memory_limit}'")
            db.execute(f"SET temp_directory = '{self._data_dir / 'tmp'}'")
            db.execute("SET preserve_insertion_order = false")
            db.execute(f"SET checkpoint_threshold = '{int(self._checkpoint_threshold_bytes)}b'")
            migrations.open_store(db, drill_pause_seconds=self._migration_drill_pause_seconds)
            self._lookups.attach(db)
            # fetchall, not fetchone: a result left unread keeps its transaction open, and an open
            # transaction beside the writer makes every CHECKPOINT fail.
            (row,) = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()
            write_conn = db.cursor()
            # The stored dedup keys, for the writer (dedup.py).
            seen = self._seen_keys if keep_seen_keys else SeenKeys.build(write_conn)
            # The slot columns, filled for a store written without them (property_columns.migrate).
            property_columns.migrate(write_conn)
            slot_writer = property_columns.SlotWriter(write_conn)
            count_writer = property_counts.CountWriter(write_conn)
        except BaseException:
            db.close()
            raise
        self._db = db
        self._next_seq = int(row[0]) + 1 if row else 1
        self._write_conn = write_conn
        self._seen_keys: SeenKeys | None = seen
        self._slot_writer = slot_writer
        self._count_writer = count_writer
        self._cursors.add(write_conn)

    # -- failure and recovery -------------------------------------------------------------------

    def checkpoint_reserve_bytes(self) -> int:
        """Free space a checkpoint may need before it frees anything: it writes the WAL's rows into new
        blocks of the database file, then drops the WAL. Twice the larger of the WAL and 16 MB (DuckDB's own
        threshold), measured in bench/bench_store.py. It follows the WAL as it grows (the writer looks at free
        space at least every 50 ms or 1000 rows) rather than counting the whole checkpoint threshold up front."""
        return 2 * max(self.wal_bytes(), DUCKDB_CHECKPOINT_THRESHOLD_BYTES)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise Unavailable(
                f"the event store is unavailable and reopens when it can; retry with backoff ({self._broken})"
            )

    def _failed(self, exc: BaseException) -> Unavailable:
        """The error to raise for a DuckDB error: Unavailable (and recovery) when it invalidated the database."""
        reason = str(exc).splitlines()[-1][:300] if str(exc) else type(exc).__name__
        with self._lock:
            if self._broken is None:
                self._broken = reason
                log.error("the event store was invalidated by DuckDB; reopening it when disk space allows: %s", reason)
                threading.Thread(target=self._recover, name="mixhouse-reopen", daemon=True).start()
        return Unavailable(f"the event store is unavailable and reopens when it can; retry with backoff ({reason})")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        self._check_usable()
        try:
            yield
        except duckdb.Error as exc:
            if invalidates(exc):
                raise self._failed(exc) from exc
            if "No space left on device" in str(exc):  # a WAL append or a spill file: nothing was stored
                raise Unavailable("the server is out of disk space; retry with backoff") from exc
            raise

    def _recover(self) -> None:
        while True:
            time.sleep(REOPEN_INTERVAL_SECONDS)
            if self._closed:
                return
            if self._writer.low_on_disk():
                continue
            with self._lock:
                old = list(self._cursors)
                for conn in old:
                    with suppress(Exception):
                        conn.close()
                with suppress(Exception):
                    self._db.close()
                try:
                    self._open()
                except Exception as exc:  # still no room, or the file is busy: try again later
                    log.warning("reopening the event store failed, will retry: %s", str(exc).splitlines()[-1][:300])
                    continue
                self._generation += 1
                self._broken = None
            log.warning("the event store was reopened")
            return

    def checkpoint_when_idle(self) -> None:
        """Once writes pause, fold the WAL into the database file: its rows get compressed into row groups
        with min/max statistics (queries skip by them), the WAL stops growing towards the automatic
        checkpoint's 16 MB, and a restart has nothing to replay (bench/bench_store.py).

        Then, once `reopen_after_rows` events have been committed since the database was opened and no read
        is running, reopen it: DuckDB keeps scanning the rows appended in this process from the in-memory
        form they were written in, even after a checkpoint stored them compressed, and a scan of them cost
        about twice the CPU of the same rows read back from the file (bench/bench_sustained.py), so queries
        stayed slower after sustained ingestion until a restart."""
        with self._lock, self._guard():
            self._count_writer.compact(self._write_conn, self._next_seq - 1)
            if self.wal_bytes():
                # With readers running DuckDB may refuse; its own checkpoint or the next pause will do it.
                with suppress(duckdb.TransactionException):
                    self._write_conn.execute("CHECKPOINT")
            self._reopen_if_due()

    def _reopen_if_due(self) -> None:
        """On the writer thread: reopen once enough rows were appended, the WAL is folded in, and no read
        runs; reads that start meanwhile wait for it (tens of milliseconds)."""
        with self._lock, self._guard():
            due = self._reopen_after_rows and self._appended_rows >= self._reopen_after_rows
            if not due or self.wal_bytes() or self._closed:
                return  # not due, or writes came back: the next pause decides
            with self._reads_changed:
                if self._reads:
                    self._reopen_wanted = True  # the last read to end asks again
                    return
                self._reopen_wanted = False
                self._reopening = True
            try:
                for conn in list(self._cursors):
                    with suppress(Exception):
                        conn.close()
                self._db.close()
                self._open(keep_seen_keys=True)
                self._generation += 1
                self._appended_rows = 0
                self.reopens += 1
                log.info("reopened the idle event store to read its newly written rows from the file")
            finally:
                with self._reads_changed:
                    self._reopening = False
                    self._reads_changed.notify_all()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Marks a read in progress for its whole length (the database is not reopened under it)."""
        with self._reads_changed:
            while self._reopening:
                self._reads_changed.wait()
            self._reads += 1
        try:
            yield
        finally:
            with self._reads_changed:
                self._reads -= 1
                self._reads_changed.notify_all()
                ask_again = self._reopen_wanted and not self._reads
                if ask_again:
                    self._reopen_wanted = False
            if ask_again:
                with suppress(Unavailable):  # shutting down
                    self._writer.call(self._reopen_if_due)

    def _counted(self, rows: Iterator[Any]) -> Iterator[Any]:
        """A stream that counts as a read from its first item until it ends or is closed."""
        with self._reading():
            yield from rows

    def wal_bytes(self) -> int:
        try:
            return (self._data_dir / "events.duckdb.wal").stat().st_size
        except OSError:
            return 0

    # -- connections ----------------------------------------------------------------------------

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A connection for the calling thread (DuckDB connections are not shared across threads)."""
        conn: duckdb.DuckDBPyConnection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "generation", -1) != self._generation:
            conn = self._db.cursor()
            conn.execute("SET TimeZone = 'UTC'")
            self._cursors.add(conn)
            self._local.conn = conn
            self._local.generation = self._generation
        return conn

    # -- writes ---------------------------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> Future[None]:
        return self._writer.submit(batch)

    @property
    def pending_rows(self) -> int:
        return self._writer.pending_rows

    def stats(self) -> EngineStats:
        return EngineStats(pending_rows=self._writer.pending_rows)

    def _write_group(self, batches: list[WriteBatch]) -> None:
        with self._lock, self._guard():
            self._write_group_on(self._write_conn, batches)

    def _write_group_on(self, conn: duckdb.DuckDBPyConnection, batches: list[WriteBatch]) -> None:
        events = [e for b in batches for e in b.events]
        parts = [part for b in batches for part in b.columns]
        if parts and any(e.values is None for e in events):  # rows whose properties were never parsed: all as rows
            events, parts = [e for b in batches for e in b.stored_events()], []
        # The property counts catch up now and then, apart from the write (property_counts.py).
        self._count_writer.before_write(conn, self._next_seq - 1)
        if parts:
            self._write_columns(conn, batches, events, parts)
            return
        if events:
            first = self._next_seq
            table = _rows_of(events).add_column(1, "seq", pa.array(range(first, first + len(events)), pa.int64()))
            # Slots for new keys, and their columns, before the transaction (see property_columns.py).
            parsed = [e.values for e in events]
            prepared = self._slot_writer.prepare(
                conn,
                "incoming_events",
                table,
                [e.properties for e in events],
                None if None in parsed else cast("list[dict[str, Any]]", parsed),
            )
        with self._rolled_back_on_failure(conn):
            if events:
                # The insert opens the transaction and returns the rows' dedup keys, in one call.
                keys = self._slot_writer.insert(
                    conn,
                    "incoming_events",
                    table,
                    prepared,
                    user_key_sql("distinct_id"),
                    returning=RETURNED_KEYS,
                    begin=True,
                )
                if prepared.parsed is None:
                    conn.unregister("incoming_events")  # registered by the insert
                # The rows just inserted, read back by seq (zone maps) when the join needs them: each scan of
                # the registered Arrow table costs Python work under the GIL, a scan of the newest rows does not.
                inserted = f"(SELECT * FROM events WHERE seq BETWEEN {first} AND {first + len(events) - 1})"
                self._seen_keys = mark_superseded(conn, inserted, self._seen_keys, keys)
            else:
                conn.execute("BEGIN TRANSACTION")
            self._link_and_commit(conn, batches, events)
        self._next_seq += len(events)
        self._appended_rows += len(events)

    def _link_and_commit(
        self, conn: duckdb.DuckDBPyConnection, batches: list[WriteBatch], events: list[StoredEvent]
    ) -> None:
        """The end of a write's transaction: the identity links its events carry (the map changes in the same
        transaction as the events), its profile updates, and the commit."""
        links = [(e.project_id, e.identity) for e in events if e.identity is not None]
        if links:
            identity.apply_links(conn, links)
        profile_updates = identity.resolve_profile_updates(conn, [u for b in batches for u in b.profile_updates])
        self._apply_profiles(conn, profile_updates, group=False)
        self._apply_profiles(conn, [u for b in batches for u in b.group_updates], group=True)
        conn.execute("COMMIT")

    @contextmanager
    def _rolled_back_on_failure(self, conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """A write's transaction, rolled back when it fails."""
        try:
            yield
        except BaseException:
            # An invalidated database refuses the rollback too; so does one whose transaction never began
            # (the insert's call failed before its BEGIN ran): the slots are reloaded either way.
            with suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            with suppress(duckdb.Error):
                self._slot_writer.reload(conn)  # slots handed out in the rolled-back transaction
            raise

    def _write_columns(
        self,
        conn: duckdb.DuckDBPyConnection,
        batches: list[WriteBatch],
        events: list[StoredEvent],
        parts: list[EventColumns],
    ) -> None:
        """`_write_group_on` for a group with batches handed over as columns (/import batches validated as a
        whole, mixhouse/domain/columns.py): one Arrow table of every event in the group's order (the rows
        with the slot columns built from their values, each part with its split values as the slot columns
        as they are), inserted in one statement."""
        slots = self._slot_writer
        rows_table: pa.Table | None = None
        if events:
            rows = _rows_of(events)
            # (No value is None, see the caller: ingestion wrote every document from its dict, with orjson.)
            values = cast("list[dict[str, Any]]", [e.values for e in events])
            prepared = slots.prepare(conn, "incoming_events", rows, [e.properties for e in events], values)
            rows_table = slots.rows_table(rows, prepared)
        slots.prepare_columns(conn, parts)
        tables: list[pa.Table] = []
        offset = 0  # in rows_table
        placed: list[tuple[int, EventColumns]] = []  # each part's first row in the group's table
        at = 0
        for batch in batches:
            if batch.events and rows_table is not None:
                tables.append(rows_table.slice(offset, len(batch.events)))
                offset += len(batch.events)
                at += len(batch.events)
            for part in batch.columns:
                tables.append(slots.columns_table(part))
                placed.append((at, part))
                at += len(part)
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        first, count = self._next_seq, table.num_rows
        table = table.add_column(1, "seq", pa.array(range(first, first + count), pa.int64()))
        with self._rolled_back_on_failure(conn):
            keys = slots.insert_table(conn, table, user_key_sql("distinct_id"), RETURNED_KEYS, begin=True)
            inserted = f"(SELECT * FROM events WHERE seq BETWEEN {first} AND {first + count - 1})"
            self._seen_keys = mark_superseded(conn, inserted, self._seen_keys, keys)
            self._link_and_commit(conn, batches, events)  # (parts carry no identity links)
        self._next_seq += count
        self._appended_rows += count
        for at, part in placed:  # their property counts, made where they were validated
            self._count_writer.given(part.project_id, first + at, part.key_counts, len(part))

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

    def export_lines(self, query: ExportQuery) -> Iterator[bytes]:
        """Unavailable at once (before any byte) when the store is down, and a `where` this engine cannot
        run refused at once; a failure mid-stream raises mid-stream."""
        # The filter reads the stored row as exported (alias `e`, the canonical id); user[...] is refused.
        query = self._bind_lookups(query, query.project.id, supported=True)
        scope = Scope.events("e", lookups=True)
        where_sql = None
        if query.where is not None:
            with self._guard():
                slots = property_columns.ready_slots(self.reader(), query.project.id)
            scope = scope.with_slots(slots)
            where_sql = compile_filter(query.where, scope)
        self._check_usable()
        return self._counted(self._export_lines(query, where_sql, lookup_joins(scope, query.where)))

    def _bind_lookups(self, spec: S, project_id: int | None, *, supported: bool, profiles: bool = False) -> S:
        """The spec with its lookup reads bound to the table versions mapped now, each loaded once."""

        def load(refs: set[LookupRef]) -> bool:
            with self._guard():
                return all(self._lookups.load(self._db, ref) for ref in self._lookups.missing(refs))

        return bind_and_load(spec, project_id, self._lookups.source, load, supported=supported, profiles=profiles)

    def _export_lines(self, query: ExportQuery, where_sql: str | None, joins: str = "") -> Iterator[bytes]:
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
                       s.distinct_id AS original_distinct_id, s.properties, {property_columns.select_list()}
                FROM events s
                LEFT JOIN identity_map m ON m.project_id = s.project_id AND m.distinct_id = s.distinct_id
                WHERE {" AND ".join(filters)} AND s.time_ms >= $wstart AND s.time_ms < $wend
            ) e {joins} {outer}
            ORDER BY e.time_ms, e.seq LIMIT $limit
        """
        # A connection of its own: the generator is consumed across threads of the server's pool.
        with self._guard():
            conn = self._db.cursor()
        self._cursors.add(conn)
        try:
            conn.execute("SET TimeZone = 'UTC'")
            remaining = query.limit if query.limit is not None else 2**62
            # One sorted query per window of at most EXPORT_WINDOW_ROWS rows: a sort holds one window at a
            # time, so memory stays flat however many rows the export has.
            with self._guard():
                counts = conn.execute(
                    f"SELECT s.time_ms // {_HOUR_MS} AS h, count(*) FROM events s WHERE {' AND '.join(filters)}"
                    " GROUP BY h ORDER BY h",
                    params,
                ).fetchall()
            for wstart, wend in export_windows(counts, query.start_ms, query.end_ms, EXPORT_WINDOW_ROWS):
                if remaining <= 0:
                    break
                window = {**params, "wstart": wstart, "wend": wend, "limit": remaining}
                with self._guard():
                    reader = conn.sql(sql, params=window).to_arrow_reader(EXPORT_BATCH_ROWS)
                while remaining > 0:
                    with self._guard():
                        batch = next(reader, None)
                    if batch is None:
                        break
                    if len(batch) > remaining:
                        # DuckDB 2.0.0 can drop the LIMIT: with a large limit (a full sort rather than a
                        # top-N) over the identity LEFT JOIN, its optimizer loses the LIMIT operator and the
                        # whole window comes back. The limit is kept here whatever the plan.
                        batch = batch.slice(0, remaining)
                    remaining -= len(batch)
                    yield _concat_strings(batch.column(0))
        finally:
            conn.close()

    def scan(self, query: ScanQuery) -> Iterator[pa.RecordBatch]:
        query = self._bind_lookups(query, query.project_id, supported=False)
        self._check_usable()
        return self._counted(scan_rows(self._scan_cursor, self._guard, query))

    def identity_mappings(self, project_id: int, *, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        self._check_usable()
        return self._counted(mapping_rows(self._scan_cursor, self._guard, project_id, batch_rows))

    def _scan_cursor(self) -> duckdb.DuckDBPyConnection:
        conn = self._db.cursor()
        self._cursors.add(conn)
        conn.execute("SET TimeZone = 'UTC'")
        return conn

    def query(self, spec: Spec[R]) -> R:
        """Run an analysis: the function registered for the spec's type, on this thread's connection."""
        from mixhouse.engine.duckdb.queries import HANDLERS

        handler = HANDLERS.get(type(spec))
        if handler is None:
            raise TypeError(f"the DuckDB engine has no handler for {type(spec).__name__}")
        supported, profiles = lookup_reads(spec)
        spec = self._bind_lookups(spec, getattr(spec, "project_id", None), supported=supported, profiles=profiles)
        with self._reading(), self._guard():
            conn = self.reader()
            with interrupt_at_deadline(conn):  # the request's deadline interrupts DuckDB
                return cast(R, handler(conn, spec))

    def profile(self, project_id: int, distinct_id: str) -> dict[str, object] | None:
        # fetchall, not fetchone: a half-read result would block the next statement on this connection.
        with self._reading(), self._guard():
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
        with self._reading(), self._guard():
            rows = (
                self.reader()
                .execute(
                    "SELECT properties FROM group_profiles WHERE project_id = ? AND group_key = ? AND group_id = ?",
                    [project_id, group_key, group_id],
                )
                .fetchall()
            )
        return orjson.loads(rows[0][0]) if rows else None

    def delete_users(self, project_id: int, distinct_ids: list[str]) -> DeleteResult:
        """On the writer thread, between two group commits: no write runs beside it (engine/duckdb/deletes.py)."""

        def work() -> DeleteResult:
            with self._lock, self._guard():
                self._count_writer.forget_given()  # counts of rows that may be deleted now: scanned instead
                return deletes.delete_users(
                    self._write_conn, project_id, distinct_ids, drill_pause_seconds=self._delete_drill_pause_seconds
                )

        result: DeleteResult = self._writer.call(work).result()
        return result

    def delete_events(self, project_id: int, insert_ids: list[str]) -> int:
        """On the writer thread, as delete_users (engine/duckdb/deletes.py)."""
        if not insert_ids:
            return 0

        def work() -> int:
            with self._lock, self._guard():
                self._count_writer.forget_given()  # as in delete_users
                return deletes.delete_events(self._write_conn, project_id, insert_ids)

        result: int = self._writer.call(work).result()
        return result

    def user_data(self, project_id: int, distinct_ids: list[str], since_ms: int | None = None) -> UserData:
        """A connection of its own, in one read transaction (one snapshot) until the events are read; a read
        in progress until then (see `_reading`)."""
        with ExitStack() as held:  # released here on failure, else when the events have been read
            held.enter_context(self._reading())
            with self._guard():
                conn = self._db.cursor()
            self._cursors.add(conn)
            held.callback(conn.close)
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute("BEGIN TRANSACTION")
            with self._guard():
                cluster = deletes.register_cluster(conn, project_id, distinct_ids)
                canonical = deletes.canonical_ids(conn, project_id)
                profiles = deletes.profiles_of_cluster(conn, project_id)
            lines = _until_done(deletes.event_lines(conn, project_id, since_ms), held.pop_all())
        return UserData(tuple(cluster), canonical, profiles, lines)

    def backup(self, target: Path) -> dict[str, int]:
        """A consistent copy of the store as of now into the new file `target`, while writes go on
        (mixhouse/engine/duckdb/backup.py); the copy's row counts. A read: the store is not reopened under it."""
        with self._reading():
            with self._guard():
                conn = self._db.cursor()
            try:
                with self._guard():
                    return copy_database(conn, target)
            finally:
                conn.close()

    def health(self) -> list[str]:
        """What keeps this engine from taking writes now (empty: ready)."""
        problems = self._writer.health()
        if self._broken is not None:
            problems.append(
                f"the event store is closed after a failure and reopens when disk space allows: {self._broken}"
            )
        return problems

    def warming(self) -> list[str]:
        """What the engine is still preparing: queries that need it wait for it (within their deadline)."""
        return [] if kernels.ready() else ["compiling the query kernels (once per install): funnels wait for them"]

    def close(self) -> None:
        self._closed = True
        self._writer.close()
        with self._lock:
            for conn in list(self._cursors):
                with suppress(Exception):
                    conn.close()
            with suppress(Exception):
                self._db.close()


def _rows_of(events: list[StoredEvent]) -> pa.Table:
    """The fixed fields and properties of `events` as an Arrow table (the insert's columns but seq)."""
    return pa.table(
        {
            "project_id": pa.array([e.project_id for e in events], pa.int64()),
            "time_ms": pa.array([e.time_ms for e in events], pa.int64()),
            "event": pa.array([e.event for e in events], pa.string()),
            "distinct_id": pa.array([e.distinct_id for e in events], pa.string()),
            "insert_id": pa.array([e.insert_id for e in events], pa.string()),
            # orjson wrote them (valid UTF-8): viewed as text without a validating cast.
            "properties": pa.array([e.properties for e in events], pa.binary()).view(pa.string()),
        }
    )


def _until_done(rows: Iterator[bytes], held: ExitStack) -> Iterator[bytes]:
    """`rows`, then what `held` holds released (the read's connection and its mark)."""
    try:
        yield from rows
    finally:
        held.close()


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


__all__ = ["DuckDBEngine", "export_windows"]
