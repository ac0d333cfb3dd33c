"""Segmentation on DuckDB: values per (key, inner key, local time bucket), top keys by total.

Every event is read from the resolved, deduplicated relation; its bucket is its instant in the project's
timezone truncated to the unit, and keys are unnested (a list property fans out, an undefined key drops
the event). Aggregation, ranking and label formatting all happen in one statement."""

from __future__ import annotations

from typing import Any

import duckdb

from mixhouse.domain.query.params import CountType
from mixhouse.domain.query.segmentation import Measure, NumberRangeSpec, SeriesRow, SeriesSpec
from mixhouse.engine.duckdb.localtime import local_timestamp_sql
from mixhouse.engine.duckdb.relations import Relation, reads_distinct_id, scoped_events, user_events

_COUNTS = {
    CountType.GENERAL: "count(*)",
    CountType.UNIQUE: "count(DISTINCT uk)",
    CountType.AVERAGE: "count(*) / count(DISTINCT uk)",
}
_MEASURES = {Measure.SUM: "sum(coalesce(x, 0))", Measure.AVERAGE: "avg(coalesce(x, 0))"}


def _source(rel: Relation, join_profiles: bool) -> str:
    if not join_profiles:
        return f"({rel.sql}) e"
    # `user["x"]` reads the profile of the resolved id; no profile leaves it undefined.
    return f"({rel.sql}) e LEFT JOIN profiles u ON u.project_id = $r_project AND u.distinct_id = e.distinct_id"


def _bucket(spec: SeriesSpec, params: dict[str, Any]) -> str:
    timeline = spec.timeline
    local_time = local_timestamp_sql("e.time_ms", timeline.timezone, timeline.start_ms, timeline.end_ms)
    if timeline.bucket_days:
        params["anchor"] = timeline.anchor
        params["days"] = timeline.bucket_days
        days = f"(CAST({local_time} AS DATE) - $anchor::DATE)"
        return f"CAST($anchor::DATE + CAST(({days} // $days) * $days AS INTEGER) AS TIMESTAMP)"
    params["unit"] = timeline.unit.value
    return f"date_trunc($unit, {local_time})"


def _key(spec: SeriesSpec, params: dict[str, Any]) -> str:
    if spec.numeric is not None:
        n = spec.numeric
        params.update(lower=n.lower, width=n.width, nbuckets=n.count)
        index = "CAST(least(greatest(floor((nb_x - $lower) / $width), 0), $nbuckets - 1) AS BIGINT)::VARCHAR"
        keys = f"list_transform([{n.number_sql}], lambda nb_x: CASE WHEN isfinite(nb_x) THEN {index} END)"
        return f"list_filter({keys}, lambda nb_k: nb_k IS NOT NULL)"
    if spec.key_sql is not None:
        return spec.key_sql
    return "[e.event]"


def _needs_identity(spec: SeriesSpec) -> bool:
    """Whether the answer can depend on the resolved id: uniques, `user[...]`, or an expression reading the
    id. Event counts and sums do not, and skip the identity-map join (a hash probe per event)."""
    if spec.measure is Measure.COUNT and spec.count_type is not CountType.GENERAL:
        return True
    if spec.join_profiles:
        return True
    number = spec.numeric.number_sql if spec.numeric is not None else None
    return reads_distinct_id(spec.where_sql, spec.key_sql, spec.inner_sql, spec.value_sql, number)


def series_rows(conn: duckdb.DuckDBPyConnection, spec: SeriesSpec) -> list[SeriesRow]:
    timeline = spec.timeline
    rel = user_events(
        conn,
        spec.project_id,
        timeline.start_ms,
        timeline.end_ms,
        events=spec.events,
        resolve_identity=_needs_identity(spec),
    )
    params: dict[str, Any] = {**rel.params, "fmt": timeline.label_format}
    bucket = _bucket(spec, params)
    keys = _key(spec, params)
    if spec.values is not None:
        params["wanted"] = list(spec.values)
        keys = f"list_filter({keys}, lambda w_k: list_contains($wanted, w_k))"
    inner = spec.inner_sql or "[CAST(NULL AS VARCHAR)]"
    value = spec.value_sql or "CAST(NULL AS DOUBLE)"
    where = spec.where_sql or "TRUE"
    aggregate = _COUNTS[spec.count_type] if spec.measure is Measure.COUNT else _MEASURES[spec.measure]
    ranked = ""
    if spec.limit is not None:
        params["limit"] = spec.limit
        ranked = """
            , top_keys AS (SELECT k FROM agg GROUP BY k ORDER BY sum(v) DESC, k LIMIT $limit)
        """
        if spec.inner_sql is not None:
            ranked += """
            , top_inner AS (
                SELECT k, i FROM (
                    SELECT k, i, row_number() OVER (PARTITION BY k ORDER BY sum(v) DESC, i) AS rn
                    FROM agg GROUP BY k, i
                ) WHERE rn <= $limit
            )
            """
    filters = []
    if spec.limit is not None:
        filters.append("k IN (SELECT k FROM top_keys)")
        if spec.inner_sql is not None:
            filters.append("(k, i) IN (SELECT (k, i) FROM top_inner)")
    final_where = f"WHERE {' AND '.join(filters)}" if filters else ""
    source = _source(rel, spec.join_profiles)
    sql = f"""
        WITH src AS (
            SELECT e.user_key AS uk, {bucket} AS bucket, {value} AS x, {keys} AS ks, {inner} AS inner_keys
            FROM {source}
            WHERE {where}
        ),
        outer_keys AS (SELECT uk, bucket, x, inner_keys, unnest(ks) AS k FROM src),
        both_keys AS (SELECT uk, bucket, x, k, unnest(inner_keys) AS i FROM outer_keys),
        agg AS (
            SELECT k, i, bucket, CAST({aggregate} AS DOUBLE) AS v FROM both_keys GROUP BY k, i, bucket
        )
        {ranked}
        SELECT k, i, strftime(bucket, $fmt), v
        FROM agg
        {final_where}
        ORDER BY sum(v) OVER (PARTITION BY k) DESC, k, sum(v) OVER (PARTITION BY k, i) DESC, i, bucket
    """
    rows = conn.execute(sql, params).fetchall()
    return [SeriesRow(r[0], r[1], r[2], float(r[3])) for r in rows]


def number_range(conn: duckdb.DuckDBPyConnection, spec: NumberRangeSpec) -> tuple[float, float] | None:
    rel = scoped_events(spec.project_id, spec.start_ms, spec.end_ms, events=spec.events)
    source = _source(rel, spec.join_profiles)
    sql = f"""
        SELECT min(n), max(n) FROM (
            SELECT {spec.number_sql} AS n FROM {source} WHERE {spec.where_sql or "TRUE"}
        ) WHERE isfinite(n)
    """
    row = conn.execute(sql, rel.params).fetchone()
    if row is None or row[0] is None:
        return None
    return float(row[0]), float(row[1])
