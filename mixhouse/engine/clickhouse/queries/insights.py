"""Saved Insights reports on ClickHouse: counts per event, segment and local time bucket, as the embedded
engine answers (mixhouse/engine/duckdb/queries/insights.py). The keys of `on` fan out with ARRAY JOIN (an
event without a key drops out, as DuckDB's `unnest` of an empty list)."""

from __future__ import annotations

from mixhouse.domain.query.insights import InsightsRow, InsightsSpec
from mixhouse.domain.query.params import CountType
from mixhouse.engine.clickhouse.expressions import compile_filter, compile_segment_key
from mixhouse.engine.clickhouse.queries.buckets import bucket_sql, naive
from mixhouse.engine.clickhouse.relations import scoped_events
from mixhouse.engine.clickhouse.scope import Scope
from mixhouse.engine.clickhouse.store import Store

_AGGREGATES = {
    CountType.GENERAL: "count()",
    CountType.UNIQUE: "uniqExact(user_key)",
    CountType.AVERAGE: "count() / uniqExact(user_key)",
}


def insights_rows(store: Store, spec: InsightsSpec) -> list[InsightsRow]:
    buckets = spec.buckets
    rel = scoped_events(store.db, spec.project_id, buckets.start_ms, buckets.end_ms, events=spec.events)
    scope = Scope.events("e")  # a report reads events only (the domain refuses `user[...]`)
    where = compile_filter(spec.where, scope) if spec.where is not None else "1"
    keys = (
        f"arrayMap(s_k -> toNullable(s_k), {compile_segment_key(spec.on, scope)})"
        if spec.on is not None
        else "[CAST(NULL AS Nullable(String))]"
    )
    sql = f"""
        SELECT event, segment, bucket, toFloat64({_AGGREGATES[spec.count_type]}) AS v
        FROM (
            SELECT e.event AS event, e.user_key AS user_key, {keys} AS segments,
                   {bucket_sql(buckets, "e.time_ms")} AS bucket
            FROM ({rel.sql}) AS e
            WHERE {where}
        ) ARRAY JOIN segments AS segment
        GROUP BY event, segment, bucket
    """
    return [
        InsightsRow(r["event"], r["segment"], naive(r["bucket"]), float(r["v"])) for r in store.rows(sql, rel.params)
    ]
