"""Saved Insights reports on DuckDB: counts per event, segment and local time bucket."""

from __future__ import annotations

from typing import Any

import duckdb

from mixhouse.domain.query.insights import InsightsRow, InsightsSpec
from mixhouse.domain.query.params import CountType
from mixhouse.engine.duckdb.buckets import bucket_sql
from mixhouse.engine.duckdb.expressions import compile_filter, compile_segment_key
from mixhouse.engine.duckdb.property_columns import ready_slots
from mixhouse.engine.duckdb.relations import user_events
from mixhouse.engine.duckdb.scope import Scope
from mixhouse.expr.plan import reads_distinct_id

_AGGREGATES = {
    CountType.GENERAL: "count(*)",
    CountType.UNIQUE: "count(DISTINCT user_key)",
    CountType.AVERAGE: "count(*) / count(DISTINCT user_key)",
}


def insights_rows(conn: duckdb.DuckDBPyConnection, spec: InsightsSpec) -> list[InsightsRow]:
    buckets = spec.buckets
    # Event counts do not depend on who did them: the identity join only for uniques or an expression
    # reading the id (as in segmentation).
    resolve = spec.count_type is not CountType.GENERAL or reads_distinct_id(spec.where, spec.on)
    rel = user_events(
        conn, spec.project_id, buckets.start_ms, buckets.end_ms, events=spec.events, resolve_identity=resolve
    )
    # A report reads events only (the domain refuses `user[...]`); slotted properties from their columns.
    scope = Scope.events("e").with_slots(ready_slots(conn, spec.project_id))
    where = compile_filter(spec.where, scope) if spec.where is not None else "TRUE"
    segment = f"unnest({compile_segment_key(spec.on, scope)})" if spec.on is not None else "CAST(NULL AS VARCHAR)"
    params: dict[str, Any] = dict(rel.params)
    bucket = bucket_sql(buckets, "e.time_ms", params)
    sql = f"""
        SELECT event, segment, bucket, CAST({_AGGREGATES[spec.count_type]} AS DOUBLE)
        FROM (
            SELECT e.event, e.user_key, {segment} AS segment, {bucket} AS bucket
            FROM ({rel.sql}) e
            WHERE {where}
        ) s
        GROUP BY event, segment, bucket
    """
    rows = conn.execute(sql, params).fetchall()
    return [InsightsRow(r[0], r[1], r[2], float(r[3])) for r in rows]
