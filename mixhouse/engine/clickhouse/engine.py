"""The ClickHouse engine: the same port as the embedded engine, on ClickHouse through a `Driver` (chDB in
process on the data folder, or a server over HTTP).

Writes go through the same group-commit writer as the embedded engine (one thread, everything queued at
that moment in one INSERT per table), so ClickHouse sees few, large inserts. An INSERT carries an
`insert_deduplication_token` derived from its content (including the sequence numbers the batch was given
once), so a group retried after a lost answer or a failure is stored once. What ClickHouse cannot do in
one transaction across tables is ordered so that a retry repairs it (identity.py, docs/scale-out.md).

Analyses not yet written for ClickHouse raise `NotSupportedByEngine` (501), which the HTTP layer answers
in the family's error format."""

from __future__ import annotations

import bisect
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
import pyarrow as pa

from mixhouse.cluster.pg import Database, coordination_url
from mixhouse.domain.export import ExportQuery
from mixhouse.domain.limits import QueryTimedOut, timed_out
from mixhouse.domain.profiles import ProfileUpdate, apply_update
from mixhouse.domain.scan import ScanQuery, windows
from mixhouse.domain.spec import Spec
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine import kernels
from mixhouse.engine.base import CommitObserver, DeleteResult, EngineStats, UserData
from mixhouse.engine.clickhouse import dedup, deletes, identity
from mixhouse.engine.clickhouse.driver import ChDBDriver, Driver, DriverError, DriverTimeout, HTTPDriver
from mixhouse.engine.clickhouse.expressions import Scope, compile_filter
from mixhouse.engine.clickhouse.lookups import LookupTables, lookup_database
from mixhouse.engine.clickhouse.mappings import identity_mappings as mapping_rows
from mixhouse.engine.clickhouse.relations import identity_map_sql
from mixhouse.engine.clickhouse.scan import scan as scan_rows
from mixhouse.engine.clickhouse.schema import ddl
from mixhouse.engine.clickhouse.sequence import LocalSequence, Sequence, SharedSequence
from mixhouse.engine.clickhouse.store import Store
from mixhouse.engine.common.localtime import offset_segments
from mixhouse.engine.common.lookups import lookup_reads
from mixhouse.engine.common.writer import GroupCommitWriter
from mixhouse.errors import NotSupportedByEngine, SettingsError, Unavailable
from mixhouse.expr.ast import LookupRef
from mixhouse.lookup.binding import LookupSource, bind_and_load
from mixhouse.private import private_dir
from mixhouse.settings import Settings

log = logging.getLogger(__name__)
R = TypeVar("R")
S = TypeVar("S")

EXPORT_WINDOW_ROWS = 50_000
EXPORT_BATCH_ROWS = 10_000
STAGING_PREFIX = "export_staging_"  # tables of exports in progress (one node only)
_HOUR_MS = 3_600_000
_EVENT_COLUMNS = ("project_id", "seq", "time_ms", "event", "distinct_id", "insert_id", "properties")
_PROFILE_COLUMNS = ("project_id", "distinct_id", "properties", "updated_ms", "version", "deleted")
_GROUP_COLUMNS = ("project_id", "group_key", "group_id", "properties", "updated_ms", "version", "deleted")


def unavailable(exc: DriverError) -> Unavailable | QueryTimedOut:
    """What a failure of the store answers: a query past its deadline is QueryTimedOut (504, as on the
    embedded engine); anything else is Unavailable (503, retryable)."""
    if isinstance(exc, DriverTimeout):
        return timed_out()
    reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return Unavailable(f"the event store (ClickHouse) failed; retry with backoff ({reason})")


class ClickHouseEngine:
    def __init__(
        self,
        driver: Driver,
        *,
        data_dir: Path | None = None,
        commit_observers: tuple[CommitObserver, ...] = (),
        disk_reserve_bytes: int | None = None,
        lookups: LookupSource | None = None,
        cluster: str | None = None,
        sequence: Sequence | None = None,
    ) -> None:
        """`data_dir`: the folder whose free space the writer watches (chDB's store); None for a server.
        `lookups`: where lookup tables mapped to properties are read from (None: queries cannot read them).
        `cluster`: create the tables ON CLUSTER, replicated and sharded (schema.py); None: one node.
        `sequence`: where events' sequence numbers come from (sequence.py); None: this process alone."""
        self._driver = driver
        self.store = Store(driver)
        self.db = driver.database
        try:
            tables = {
                str(r["name"])
                for r in self.store.rows("SELECT name FROM system.tables WHERE database = {db:String}", {"db": self.db})
            }
            for sql in ddl(self.db, cluster):
                if f"{self.db}.dedup_keys " in sql and "events" in tables and "dedup_keys" not in tables:
                    log.info("clickhouse: filling dedup_keys from the stored events (once, after an upgrade)")
                    for step in dedup.backfill_statements(self.db, sql, cluster):
                        driver.command(step)
                    continue
                driver.command(sql)
            rows = self.store.rows(f"SELECT max(seq) AS s FROM {self.db}.events")
        except DriverError as exc:
            driver.close()
            raise unavailable(exc) from exc
        self._sequence = sequence or LocalSequence()
        try:
            self._sequence.start_after(int(rows[0]["s"] or 0) if rows else 0)
        except Unavailable:
            driver.close()
            raise
        try:
            self._lookups = LookupTables(self.store, lookups, cluster)
            if driver.staging:
                self._drop_staging()
        except DriverError as exc:
            driver.close()
            raise unavailable(exc) from exc
        self._writer = GroupCommitWriter(
            self._write_group,
            disk_path=data_dir,
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
    ) -> ClickHouseEngine:
        if settings.engine == "chdb":
            if settings.clickhouse_cluster:
                raise SettingsError("clickhouse_cluster needs --engine clickhouse (chDB is one process, one node)")
            folder = settings.data_dir / "clickhouse"
            private_dir(settings.data_dir)
            return cls(
                ChDBDriver(folder, settings.clickhouse_database),
                data_dir=settings.data_dir,
                commit_observers=commit_observers,
                disk_reserve_bytes=settings.disk_reserve_bytes,
                lookups=lookups,
            )
        try:
            driver: Driver = HTTPDriver(
                settings.clickhouse_url,
                settings.clickhouse_database,
                settings.clickhouse_user,
                settings.clickhouse_password,
            )
        except DriverError as exc:
            raise unavailable(exc) from exc
        # Several processes may write to one server: with a database they coordinate through, one counter.
        shared = coordination_url(settings)
        sequence = SharedSequence(Database(shared), settings.clickhouse_database) if shared else None
        return cls(
            driver,
            commit_observers=commit_observers,
            lookups=lookups,
            cluster=settings.clickhouse_cluster or None,
            sequence=sequence,
        )

    # -- writes ---------------------------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> Future[None]:
        if batch.columns:  # this engine writes rows: events handed over as columns become rows here
            batch = WriteBatch(batch.stored_events(), batch.profile_updates, batch.group_updates)
        return self._writer.submit(batch)

    def stats(self) -> EngineStats:
        return EngineStats(pending_rows=self._writer.pending_rows)

    def _seqs(self, batch: WriteBatch) -> int:
        """The first sequence number of the batch's events, given once: a retry of the batch (alone or in
        another group) writes the same rows, so its insert's deduplication token is the same."""
        first = getattr(batch, "_clickhouse_first_seq", None)
        if first is None:
            first = self._sequence.take(len(batch.events)) if batch.events else 0
            batch._clickhouse_first_seq = first  # type: ignore[attr-defined]
        return int(first)

    def _write_group(self, batches: list[WriteBatch]) -> None:
        try:
            self._write(batches)
        except DriverError as exc:
            raise unavailable(exc) from exc

    def _write(self, batches: list[WriteBatch]) -> None:
        store = self.store
        rows: list[tuple[Any, ...]] = []
        for batch in batches:
            first = self._seqs(batch)
            rows.extend(
                (e.project_id, first + i, e.time_ms, e.event, e.distinct_id, e.insert_id, e.properties.decode())
                for i, e in enumerate(batch.events)
            )
        events = [e for b in batches for e in b.events]
        # 1. identity links and the map rows they change (idempotent: a retry recomputes the same map)
        links = [(e.project_id, e.identity) for e in events if e.identity is not None]
        if links:
            identity.apply_links(store, links)
        # 2. profile states, worked out before anything else is written (a bad update fails the group here)
        user_updates = identity.resolve_profile_updates(store, [u for b in batches for u in b.profile_updates])
        profiles = self._profile_rows(user_updates, group=False)
        groups = self._profile_rows([u for b in batches for u in b.group_updates], group=True)
        # 3. the dedup keys, the events, then the dedup marks they cause, then the profiles
        if rows:
            dedup.record_keys(store, rows)
            store.insert("events", _EVENT_COLUMNS, rows)
            dedup.mark_superseded(store, dedup.batch_keys(rows))
        store.insert("profiles", _PROFILE_COLUMNS, profiles)
        store.insert("group_profiles", _GROUP_COLUMNS, groups)

    def _profile_rows(self, updates: list[ProfileUpdate], *, group: bool) -> list[tuple[Any, ...]]:
        if not updates:
            return []
        table = "group_profiles" if group else "profiles"
        state: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        by_project: dict[int, set[tuple[str, ...]]] = {}
        for u in updates:
            by_project.setdefault(u.project_id, set()).add(u.key)
        for project_id, keys in by_project.items():
            if group:
                found = self.store.rows(
                    f"""SELECT group_key AS a, group_id AS b, properties FROM {self.db}.{table} FINAL
                        WHERE project_id = {{p:Int64}} AND deleted = 0
                          AND has({{keys:Array(Tuple(String, String))}}, (group_key, group_id))""",
                    {"p": project_id, "keys": sorted(keys)},
                )
                state.update({(project_id, r["a"], r["b"]): orjson.loads(r["properties"]) for r in found})
            else:
                found = self.store.rows(
                    f"""SELECT distinct_id AS a, properties FROM {self.db}.{table} FINAL
                        WHERE project_id = {{p:Int64}} AND deleted = 0 AND has({{ids:Array(String)}}, distinct_id)""",
                    {"p": project_id, "ids": sorted(k[0] for k in keys)},
                )
                state.update({(project_id, r["a"]): orjson.loads(r["properties"]) for r in found})
        touched: dict[tuple[Any, ...], int] = {}
        for update in updates:  # in arrival order
            key = (update.project_id, *update.key)
            state[key] = apply_update(state.get(key), update)
            touched[key] = update.time_ms
        version = self.store.version()
        return [
            (
                *key,
                orjson.dumps(state[key]).decode() if state[key] is not None else "{}",
                ms,
                version,
                int(state[key] is None),
            )
            for key, ms in touched.items()
        ]

    # -- reads ----------------------------------------------------------------------------------

    def export_lines(self, query: ExportQuery) -> Iterator[bytes]:
        query = self._bind_lookups(query, query.project.id, supported=True)
        with lookup_database(self.db):
            where_sql = compile_filter(query.where, Scope.events("e")) if query.where is not None else None
        return self._export_lines(query, where_sql)

    def _bind_lookups(self, spec: S, project_id: int | None, *, supported: bool, profiles: bool = False) -> S:
        """The spec with its lookup reads bound to the table versions mapped now, each loaded once."""

        def load(refs: set[LookupRef]) -> bool:
            try:
                return all(self._lookups.load(ref) for ref in self._lookups.missing(refs))
            except DriverError as exc:
                raise unavailable(exc) from exc

        return bind_and_load(spec, project_id, self._lookups.source, load, supported=supported, profiles=profiles)

    def _export_lines(self, query: ExportQuery, where_sql: str | None) -> Iterator[bytes]:
        params: dict[str, Any] = {"p": query.project.id, "start": query.start_ms, "end": query.end_ms}
        filters = ["s.project_id = {p:Int64}", "s.time_ms >= {start:Int64}", "s.time_ms < {end:Int64}"]
        if query.events is not None:
            filters.append("has({events:Array(String)}, s.event)")
            params["events"] = list(query.events)
        try:
            counts = [
                (int(c["h"]), int(c["n"]))
                for c in self.store.driver.arrow(
                    f"SELECT intDiv(s.time_ms, {_HOUR_MS}) AS h, count() AS n FROM {self.db}.events AS s"
                    f" WHERE {' AND '.join(filters)} GROUP BY h ORDER BY h",
                    params,
                ).to_pylist()
            ]
        except DriverError as exc:
            raise unavailable(exc) from exc
        limit = query.limit if query.limit is not None else 2**62
        if self._driver.staging and sum(n for _h, n in counts) > EXPORT_WINDOW_ROWS and limit > EXPORT_WINDOW_ROWS:
            return self._staged_export(query, _export_rows_sql(self.db, filters, where_sql), params, counts)
        sql = f"""
            SELECT e.t AS t, e.event AS event, e.distinct_id AS distinct_id, e.original AS original,
                   e.properties AS properties
            FROM ({_export_rows_sql(self.db, [*filters, "s.time_ms >= {ws:Int64}", "s.time_ms < {we:Int64}"], where_sql)}) AS e
            ORDER BY e.t, e.seq LIMIT {{limit:UInt64}}
        """
        return self._export_windows(query, sql, params, counts)

    def _staged_export(
        self, query: ExportQuery, rows_sql: str, params: dict[str, Any], counts: list[tuple[int, int]]
    ) -> Iterator[bytes]:
        """A large export on one node: the range's rows are copied once into a staging table ordered by
        (time, seq), and the windows are read from it, each reading only its own granules. Read straight from
        the events table, every window would read every granule of the range (events are ordered by user,
        so any hour's rows are spread over all of them): the cost grew with windows x rows, 130 s for 10M
        events. The staging table is dropped when the export ends or is abandoned, and at the next start
        after a crash (`_drop_staging`)."""
        name = f"{self.db}.{STAGING_PREFIX}{uuid.uuid4().hex}"
        end_ms = query.end_ms
        if query.limit is not None and query.where is None:
            # rows past the hour where the limit is reached are never written: they need not be staged
            seen = 0
            for hour, n in counts:
                seen += n
                if seen >= query.limit:
                    end_ms = min(end_ms, (hour + 1) * _HOUR_MS)
                    break
        try:
            try:
                self._driver.command(
                    f"""CREATE TABLE {name} (t Int64, seq Int64, event String, distinct_id String,
                        original String, properties String) ENGINE = MergeTree ORDER BY (t, seq)"""
                )
                self._driver.command(
                    f"INSERT INTO {name} SELECT t, seq, event, distinct_id, original, properties FROM ({rows_sql})"
                    " WHERE t < {staged_end:Int64}",
                    {**params, "staged_end": end_ms},
                )
                staged = self.store.driver.arrow(
                    f"SELECT intDiv(t, {_HOUR_MS}) AS h, count() AS n FROM {name} GROUP BY h ORDER BY h"
                ).to_pylist()
            except DriverError as exc:
                raise unavailable(exc) from exc
            sql = f"""SELECT t, event, distinct_id, original, properties FROM {name}
                WHERE t >= {{ws:Int64}} AND t < {{we:Int64}} ORDER BY t, seq LIMIT {{limit:UInt64}}"""
            yield from self._export_windows(query, sql, {}, [(int(c["h"]), int(c["n"])) for c in staged])
        finally:
            self._drop_table(name)

    def _drop_table(self, name: str) -> None:
        try:
            self._driver.command(f"DROP TABLE IF EXISTS {name} SYNC")
        except DriverError:
            log.warning("clickhouse: dropping %s failed (it is dropped at the next start)", name, exc_info=True)

    def _drop_staging(self) -> None:
        """Staging tables left by exports running when the process stopped (one process owns a chDB store)."""
        rows = self.store.rows(
            "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {prefix:String})",
            {"db": self.db, "prefix": STAGING_PREFIX},
        )
        for row in rows:
            self._drop_table(f"{self.db}.{row['name']}")

    def _export_windows(
        self, query: ExportQuery, sql: str, params: dict[str, Any], counts: list[tuple[int, int]]
    ) -> Iterator[bytes]:
        remaining = query.limit if query.limit is not None else 2**62
        shift = _Shift(query) if query.shift_to_project_timezone else None
        for ws, we in windows(counts, query.start_ms, query.end_ms, EXPORT_WINDOW_ROWS):
            if remaining <= 0:
                break
            try:
                table = self.store.driver.arrow(sql, {**params, "ws": ws, "we": we, "limit": remaining})
            except DriverError as exc:
                raise unavailable(exc) from exc
            remaining -= table.num_rows
            for batch in table.to_batches(EXPORT_BATCH_ROWS):
                yield export_chunk(batch.to_pydict(), query.time_in_ms, shift)

    def scan(self, query: ScanQuery) -> Iterator[pa.RecordBatch]:
        return scan_rows(self.store, query)

    def identity_mappings(self, project_id: int, *, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        return mapping_rows(self.store, project_id, batch_rows)

    def query(self, spec: Spec[R]) -> R:
        from mixhouse.engine.clickhouse.queries import HANDLERS

        handler = HANDLERS.get(type(spec))
        if handler is None:
            raise NotSupportedByEngine(
                f"this analysis ({type(spec).__name__}) is not available on the ClickHouse engine yet"
            )
        supported, profiles = lookup_reads(spec)
        spec = self._bind_lookups(spec, getattr(spec, "project_id", None), supported=supported, profiles=profiles)
        try:
            with lookup_database(self.db):
                return cast(R, handler(self.store, spec))
        except DriverError as exc:
            raise unavailable(exc) from exc

    def profile(self, project_id: int, distinct_id: str) -> dict[str, object] | None:
        rows = self._rows(
            f"SELECT properties FROM {self.db}.profiles FINAL WHERE project_id = {{p:Int64}}"
            " AND distinct_id = {d:String} AND deleted = 0",
            {"p": project_id, "d": distinct_id},
        )
        return orjson.loads(rows[0]["properties"]) if rows else None

    def group_profile(self, project_id: int, group_key: str, group_id: str) -> dict[str, object] | None:
        rows = self._rows(
            f"SELECT properties FROM {self.db}.group_profiles FINAL WHERE project_id = {{p:Int64}}"
            " AND group_key = {k:String} AND group_id = {g:String} AND deleted = 0",
            {"p": project_id, "k": group_key, "g": group_id},
        )
        return orjson.loads(rows[0]["properties"]) if rows else None

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return self.store.rows(sql, params)
        except DriverError as exc:
            raise unavailable(exc) from exc

    def delete_users(self, project_id: int, distinct_ids: list[str]) -> DeleteResult:
        """On the writer thread, between two group commits (deletes.py says how and why)."""

        def work() -> DeleteResult:
            try:
                return deletes.delete_users(self.store, project_id, distinct_ids)
            except DriverError as exc:
                raise unavailable(exc) from exc

        result: DeleteResult = self._writer.call(work).result()
        return result

    def delete_events(self, project_id: int, insert_ids: list[str]) -> int:
        """On the writer thread, as delete_users."""
        if not insert_ids:
            return 0

        def work() -> int:
            try:
                return deletes.delete_events(self.store, project_id, insert_ids)
            except DriverError as exc:
                raise unavailable(exc) from exc

        result: int = self._writer.call(work).result()
        return result

    def user_data(self, project_id: int, distinct_ids: list[str], since_ms: int | None = None) -> UserData:
        try:
            canonical = deletes.cluster(self.store, project_id, distinct_ids)
            profiles = deletes.profiles_of(self.store, project_id, sorted(canonical))
        except DriverError as exc:
            raise unavailable(exc) from exc
        return UserData(
            tuple(canonical), canonical, profiles, deletes.event_lines(self.store, project_id, canonical, since_ms)
        )

    def backup(self, target: Path) -> dict[str, int]:
        """Refused: `mixhouse backup` writes and restores one embedded-store file, which a ClickHouse store
        is not. ClickHouse's own BACKUP is the way (docs/scale-out.md, "Backup")."""
        raise NotSupportedByEngine(
            "mixhouse backup copies the embedded store only: back up a ClickHouse store with ClickHouse's"
            " BACKUP DATABASE (docs/scale-out.md, Backup)"
        )

    def health(self) -> list[str]:
        return self._writer.health()

    def warming(self) -> list[str]:
        return [] if kernels.ready() else ["compiling the query kernels (once per install): funnels wait for them"]

    def close(self) -> None:
        self._writer.close()
        self._driver.close()
        self._sequence.close()


def _export_rows_sql(db: str, filters: list[str], where_sql: str | None) -> str:
    """The rows an export writes (t, seq, event, distinct_id, original, properties), unordered. Rows show
    their canonical id (https://developer.mixpanel.com/reference/raw-event-export); rows re-attributed keep
    the id they were sent with in $distinct_id_before_identity."""
    outer = f"WHERE ({where_sql})" if where_sql else ""
    return f"""
        SELECT e.time_ms AS t, e.seq AS seq, e.event AS event, e.distinct_id AS distinct_id, e.original AS original,
               e.properties AS properties
        FROM (
            SELECT s.seq AS seq, s.time_ms AS time_ms, s.event AS event,
                   if(m.canonical_id = '', s.distinct_id, m.canonical_id) AS distinct_id,
                   s.distinct_id AS original, s.properties AS properties
            FROM {db}.events AS s
            LEFT JOIN {identity_map_sql(db, "p")} AS m ON m.distinct_id = s.distinct_id
            WHERE {" AND ".join(filters)}
        ) AS e {outer}
    """


class _Shift:
    """Older Mixpanel projects export wall-clock time in the project zone as if it were UTC: the zone's
    offset at each instant, from the offsets worked out once for the range."""

    def __init__(self, query: ExportQuery) -> None:
        segments = offset_segments(
            query.project.timezone, query.start_ms // 1000 - 86_400, query.end_ms // 1000 + 86_400
        )
        self._starts = [s * 1000 for s, _ in segments]
        self._offsets = [o * 1000 for _, o in segments]

    def __call__(self, t: int) -> int:
        i = max(bisect.bisect_right(self._starts, t) - 1, 0)
        return t + self._offsets[i]


def export_chunk(columns: dict[str, list[Any]], time_in_ms: bool, shift: _Shift | None) -> bytes:
    """Export lines as the embedded engine writes them: event, then time, distinct_id, the id before
    identity when it differs, then the stored properties in their stored order."""
    out: list[bytes] = []
    for t, event, did, original, props in zip(
        columns["t"], columns["event"], columns["distinct_id"], columns["original"], columns["properties"], strict=True
    ):
        at = shift(t) if shift is not None else t
        head = (
            b'{"event":'
            + orjson.dumps(event)
            + b',"properties":{"time":'
            + str(at if time_in_ms else at // 1000).encode()
        )
        head += b',"distinct_id":' + orjson.dumps(did)
        if did != original:
            head += b',"$distinct_id_before_identity":' + orjson.dumps(original)
        body = props.encode() if isinstance(props, str) else bytes(props)
        out.append(head + (b"}" if body == b"{}" else b"," + body[1:]) + b"}\n")
    return b"".join(out)


__all__ = ["ClickHouseEngine", "export_chunk"]
