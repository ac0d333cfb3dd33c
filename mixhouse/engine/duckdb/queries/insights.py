"""Saved Insights reports on DuckDB: counts per event, segment and local time bucket."""

from __future__ import annotations

import duckdb

from mixhouse.domain.query.insights import InsightsRow, InsightsSpec
from mixhouse.engine.duckdb.localtime import local_timestamp_sql
from mixhouse.engine.duckdb.relations import user_events

_AGGREGATES = {
    "general": "count(*)",
    "unique": "count(DISTINCT user_key)",
    "average": "count(*) / count(DISTINCT user_key)",
}


def insights_rows(conn: duckdb.DuckDBPyConnection, spec: InsightsSpec) -> list[InsightsRow]:
    rel = user_events(conn, spec.project_id, spec.start_ms, spec.end_ms, events=spec.events)
    segment = f"unnest({spec.on_sql})" if spec.on_sql else "CAST(NULL AS VARCHAR)"
    where = spec.where_sql or "TRUE"
    sql = f"""
        SELECT event, segment, bucket, CAST({_AGGREGATES[spec.count_type]} AS DOUBLE)
        FROM (
            SELECT e.event, e.user_key, {segment} AS segment,
                   date_trunc($unit, {local_timestamp_sql("e.time_ms", spec.timezone, spec.start_ms, spec.end_ms)}) AS bucket
            FROM ({rel.sql}) e
            WHERE {where}
        ) s
        GROUP BY event, segment, bucket
    """
    rows = conn.execute(sql, {**rel.params, "unit": spec.unit}).fetchall()
    return [InsightsRow(r[0], r[1], r[2], float(r[3])) for r in rows]
