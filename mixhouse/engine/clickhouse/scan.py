"""`Engine.scan` on ClickHouse: a project's events or profiles as Arrow batches, read from the same resolved,
deduplicated relation as every report. In time order the range is read in windows of at most WINDOW_ROWS
rows (cut at hour boundaries from an hourly count), so no result holds more than one window; in user order
ClickHouse sorts the whole range (spilling past `max_bytes_before_external_sort`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from mixhouse.domain.scan import ScanQuery, windows
from mixhouse.engine.clickhouse.driver import DriverError
from mixhouse.engine.clickhouse.expressions import PROFILE_ALIAS, Scope, compile_filter
from mixhouse.engine.clickhouse.relations import profiles_sql, scoped_events
from mixhouse.engine.clickhouse.store import Store
from mixhouse.errors import Unavailable

WINDOW_ROWS = 200_000
_HOUR_MS = 3_600_000
_FAR = 2**62


def matching_events(store: Store, query: ScanQuery) -> tuple[str, str, dict[str, Any]]:
    """The FROM (events as `e`), the WHERE of the query's filter, and their parameters: the events a scan
    reads, before its window and order (also what JQL's aggregate shapes group)."""
    rel = scoped_events(
        store.db, query.project_id, None, None, events=query.events, resolve_identity=query.resolve_identity
    )
    params: dict[str, Any] = dict(rel.params)
    source = f"({rel.sql}) AS e"
    where = "1"
    if query.where is not None:
        scope = Scope.events_with_user(query.where, "e", timezone=query.where.timezone)
        where = compile_filter(query.where, scope)
        if scope.user_properties_sql is not None:
            source += (
                f" LEFT JOIN {profiles_sql(store.db)} AS {PROFILE_ALIAS} ON {PROFILE_ALIAS}.distinct_id = e.distinct_id"
            )
    return source, where, params


def _event_sql(store: Store, query: ScanQuery) -> tuple[str, dict[str, Any]]:
    source, where, params = matching_events(store, query)
    order = "e.time_ms, e.seq" if query.order == "time" else "e.distinct_id, e.time_ms, e.seq"
    sql = f"""
        SELECT e.event AS name, e.distinct_id AS distinct_id, e.time_ms AS time, e.insert_id AS insert_id,
               e.properties AS properties
        FROM {source}
        WHERE e.time_ms >= {{w_start:Int64}} AND e.time_ms < {{w_end:Int64}} AND ({where})
        ORDER BY {order}
    """
    return sql, params


def _profile_sql(store: Store, query: ScanQuery) -> tuple[str, dict[str, Any]]:
    where = compile_filter(query.where, Scope.profiles("p")) if query.where is not None else "1"
    sql = f"""
        SELECT p.distinct_id AS distinct_id, p.properties AS properties FROM {profiles_sql(store.db)} AS p
        WHERE ({where}) ORDER BY p.distinct_id
    """
    return sql, {"r_project": query.project_id}


def scan(store: Store, query: ScanQuery) -> Iterator[pa.RecordBatch]:
    """Batches of `query.schema`; Unavailable at once (before any batch) when the store is down."""
    try:
        if query.kind == "profiles":
            sql, params = _profile_sql(store, query)
            spans: list[tuple[int, int]] = [(0, 0)]
        else:
            sql, params = _event_sql(store, query)
            start = query.from_ms if query.from_ms is not None else -_FAR
            end = query.to_ms if query.to_ms is not None else _FAR
            if query.order == "time":
                counts = store.rows(
                    f"SELECT intDiv(time_ms, {_HOUR_MS}) AS h, count() AS n FROM {store.db}.events"
                    " WHERE project_id = {p:Int64} AND time_ms >= {s:Int64} AND time_ms < {e:Int64}"
                    " GROUP BY h ORDER BY h",
                    {"p": query.project_id, "s": start, "e": end},
                )
                spans = windows([(int(c["h"]), int(c["n"])) for c in counts], start, end, WINDOW_ROWS)
            else:
                spans = [(start, end)]
    except DriverError as exc:
        raise Unavailable(f"the event store (ClickHouse) failed; retry with backoff ({exc})") from exc
    return _batches(store, query, sql, params, spans)


def _batches(
    store: Store, query: ScanQuery, sql: str, params: dict[str, Any], spans: list[tuple[int, int]]
) -> Iterator[pa.RecordBatch]:
    schema = query.schema
    for w_start, w_end in spans:
        bound = params if query.kind == "profiles" else {**params, "w_start": w_start, "w_end": w_end}
        try:
            table = store.driver.arrow(sql, bound)
        except DriverError as exc:
            raise Unavailable(f"the event store (ClickHouse) failed; retry with backoff ({exc})") from exc
        for batch in table.to_batches(query.batch_rows):
            if len(batch):
                yield pa.RecordBatch.from_arrays(
                    [batch.column(i).cast(field.type) for i, field in enumerate(schema)], schema=schema
                )
