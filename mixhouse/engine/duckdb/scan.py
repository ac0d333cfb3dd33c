"""`Engine.scan` on DuckDB: a project's events or profiles as Arrow batches.

Events are read from the resolved, deduplicated relation every report reads (relations.scoped_events), so a
scan sees what /segmentation counts. In time order the range is read in windows of at most
WINDOW_ROWS rows (cut at hour boundaries from an hourly count), so a sort never holds more than one window;
in user order DuckDB sorts the whole range (spilling to the data folder's tmp/ past its memory limit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from mixhouse.domain.scan import ScanQuery, windows
from mixhouse.engine.duckdb.expressions import PROFILE_ALIAS, Scope, compile_filter
from mixhouse.engine.duckdb.relations import scoped_events

WINDOW_ROWS = 200_000
_HOUR_MS = 3_600_000
_FAR = 2**62


def typed_batches(
    reader: pa.RecordBatchReader, schema: pa.Schema, guard: Callable[[], Any]
) -> Iterator[pa.RecordBatch]:
    """The reader's non-empty batches cast to `schema`, each read under the engine's guard."""
    while True:
        with guard():
            batch = next(reader, None)
        if batch is None:
            return
        if len(batch):
            yield pa.RecordBatch.from_arrays(
                [batch.column(i).cast(field.type) for i, field in enumerate(schema)], schema=schema
            )


def _event_sql(query: ScanQuery) -> tuple[str, dict[str, Any]]:
    source, where, params = matching_events(query)
    order = "e.time_ms, e.seq" if query.order == "time" else "e.distinct_id, e.time_ms, e.seq"
    sql = f"""
        SELECT e.event AS name, e.distinct_id, e.time_ms AS time, e.insert_id, e.properties
        FROM {source}
        WHERE e.time_ms >= $w_start AND e.time_ms < $w_end AND ({where})
        ORDER BY {order}
    """
    return sql, params


def matching_events(query: ScanQuery) -> tuple[str, str, dict[str, Any]]:
    """The events a scan reads, as (FROM clause with alias `e`, filter, parameters); the caller bounds
    `e.time_ms` (the scan by windows, an aggregate by the query's range)."""
    rel = scoped_events(
        query.project_id,
        None,
        None,
        events=query.events,
        resolve_identity=query.resolve_identity,
    )
    params: dict[str, Any] = dict(rel.params)
    source = f"({rel.sql}) e"
    where = "TRUE"
    if query.where is not None:
        scope = Scope.events_with_user(query.where, "e", timezone=query.where.timezone)
        where = compile_filter(query.where, scope)
        if scope.user_properties_sql is not None:
            source += (
                f" LEFT JOIN profiles {PROFILE_ALIAS} ON {PROFILE_ALIAS}.project_id = $r_project"
                f" AND {PROFILE_ALIAS}.distinct_id = e.distinct_id"
            )
    return source, where, params


def _profile_sql(query: ScanQuery) -> tuple[str, dict[str, Any]]:
    where = compile_filter(query.where, Scope.profiles("p")) if query.where is not None else "TRUE"
    sql = f"""
        SELECT p.distinct_id, p.properties FROM profiles p
        WHERE p.project_id = $project AND ({where})
        ORDER BY p.distinct_id
    """
    return sql, {"project": query.project_id}


def scan(
    open_cursor: Callable[[], duckdb.DuckDBPyConnection],
    guard: Callable[[], Any],
    query: ScanQuery,
) -> Iterator[pa.RecordBatch]:
    """Batches of `query.schema`. `open_cursor` gives a connection of the scan's own (the generator may be
    consumed across threads); `guard` is the engine's failure guard (a context manager factory)."""
    schema = query.schema
    with guard():
        conn = open_cursor()
    try:
        if query.kind == "profiles":
            sql, params = _profile_sql(query)
            spans: list[tuple[int, int]] = [(0, 0)]
        else:
            sql, params = _event_sql(query)
            start = query.from_ms if query.from_ms is not None else -_FAR
            end = query.to_ms if query.to_ms is not None else _FAR
            if query.order == "time":
                with guard():
                    counts = conn.execute(
                        f"SELECT time_ms // {_HOUR_MS} AS h, count(*) FROM events"
                        " WHERE project_id = $p AND time_ms >= $s AND time_ms < $e GROUP BY h ORDER BY h",
                        {"p": query.project_id, "s": start, "e": end},
                    ).fetchall()
                spans = windows(counts, start, end, WINDOW_ROWS)
            else:
                spans = [(start, end)]
        for w_start, w_end in spans:
            bound = params if query.kind == "profiles" else {**params, "w_start": w_start, "w_end": w_end}
            with guard():
                reader = conn.sql(sql, params=bound).to_arrow_reader(query.batch_rows)
            yield from typed_batches(reader, schema, guard)
    finally:
        conn.close()
