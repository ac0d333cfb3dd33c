"""Segmentation on ClickHouse: values per (key, inner key, local time bucket), top keys by total, as the
embedded engine answers (mixhouse/engine/duckdb/queries/segmentation.py). Keys fan out with ARRAY JOIN
(a list property gives one row per distinct element, an undefined key drops the event)."""

from __future__ import annotations

from typing import Any

from mixhouse.domain.query.params import CountType
from mixhouse.domain.query.segmentation import Measure, NumberRangeSpec, SeriesRow, SeriesSpec
from mixhouse.engine.clickhouse.expressions import compile_filter, compile_number, compile_segment_key
from mixhouse.engine.clickhouse.queries.buckets import bucket_sql, naive
from mixhouse.engine.clickhouse.relations import Relation, profiles_sql, scoped_events
from mixhouse.engine.clickhouse.scope import PROFILE_ALIAS, Scope
from mixhouse.engine.clickhouse.store import Store
from mixhouse.expr.plan import EventExpr, reads_distinct_id, reads_user

_COUNTS = {
    CountType.GENERAL: "count()",
    CountType.UNIQUE: "uniqExact(uk)",
    CountType.AVERAGE: "count() / uniqExact(uk)",
}
_MEASURES = {Measure.SUM: "sum(coalesce(x, 0))", Measure.AVERAGE: "avg(coalesce(x, 0))"}


def _scope(*exprs: EventExpr | None) -> Scope:
    user = f"{PROFILE_ALIAS}.properties" if reads_user(*exprs) else None
    return Scope.events("e", user_properties_sql=user)


def _source(store: Store, rel: Relation, scope: Scope) -> str:
    if scope.user_properties_sql is None:
        return f"({rel.sql}) AS e"
    # `user["x"]` reads the profile of the resolved id; no profile ('' after the LEFT JOIN) is undefined.
    return f"({rel.sql}) AS e LEFT JOIN {profiles_sql(store.db)} AS {PROFILE_ALIAS} ON {PROFILE_ALIAS}.distinct_id = e.distinct_id"


def _key(spec: SeriesSpec, scope: Scope, params: dict[str, Any]) -> str:
    if spec.numeric is not None:
        n = spec.numeric
        params.update(lower=float(n.lower), width=float(n.width), nbuckets=int(n.count))
        number = compile_number(n.number, scope)
        index = "toString(toInt64(least(greatest(floor((nb_x - {lower:Float64}) / {width:Float64}), 0.), toFloat64({nbuckets:Int64} - 1))))"
        keys = f"arrayMap(nb_x -> if(isFinite(nb_x), {index}, NULL), [{number}])"
        return f"arrayMap(nb_k -> assumeNotNull(nb_k), arrayFilter(nb_k -> isNotNull(nb_k), {keys}))"
    if spec.key is not None:
        return compile_segment_key(spec.key, scope)
    return "[e.event]"


def _needs_identity(spec: SeriesSpec, scope: Scope) -> bool:
    if spec.measure is Measure.COUNT and spec.count_type is not CountType.GENERAL:
        return True
    if scope.user_properties_sql is not None:
        return True
    return reads_distinct_id(*spec.expressions())


def series_rows(store: Store, spec: SeriesSpec) -> list[SeriesRow]:
    buckets = spec.buckets
    scope = _scope(*spec.expressions())
    rel = scoped_events(
        store.db,
        spec.project_id,
        buckets.start_ms,
        buckets.end_ms,
        events=spec.events,
        resolve_identity=_needs_identity(spec, scope),
    )
    params: dict[str, Any] = dict(rel.params)
    where = compile_filter(spec.where, scope) if spec.where is not None else "1"
    bucket = bucket_sql(buckets, "e.time_ms")
    keys = _key(spec, scope, params)
    if spec.values is not None:
        params["wanted"] = list(spec.values)
        keys = f"arrayFilter(w_k -> has({{wanted:Array(String)}}, w_k), {keys})"
    inner = (
        f"arrayMap(i_k -> toNullable(i_k), {compile_segment_key(spec.inner, scope)})"
        if spec.inner is not None
        else "[CAST(NULL AS Nullable(String))]"
    )
    value = compile_number(spec.value, scope) if spec.value is not None else "CAST(NULL AS Nullable(Float64))"
    aggregate = _COUNTS[spec.count_type] if spec.measure is Measure.COUNT else _MEASURES[spec.measure]
    # Every WITH subquery is used once: ClickHouse evaluates a WITH subquery again at each use, so ranking the
    # top keys from `agg` in a subquery of their own read and aggregated the events twice.
    ranked = "SELECT * FROM totals"
    if spec.limit is not None:
        params["limit"] = spec.limit
        kept = ["kr <= {limit:UInt64}"] + (["ir <= {limit:UInt64}"] if spec.inner is not None else [])
        ranked = f"""SELECT * FROM (
                SELECT *, dense_rank() OVER (ORDER BY kt DESC, k) AS kr,
                       dense_rank() OVER (PARTITION BY k ORDER BY it DESC, i) AS ir
                FROM totals
            ) WHERE {" AND ".join(kept)}"""
    sql = f"""
        WITH src AS (
            SELECT e.user_key AS uk, {bucket} AS bucket, {value} AS x, {keys} AS ks, {inner} AS inner_keys
            FROM {_source(store, rel, scope)}
            WHERE {where}
        ),
        both_keys AS (SELECT uk, bucket, x, k, i FROM src ARRAY JOIN ks AS k ARRAY JOIN inner_keys AS i),
        agg AS (SELECT k, i, bucket, toFloat64({aggregate}) AS v FROM both_keys GROUP BY k, i, bucket),
        totals AS (
            SELECT k, i, bucket, v, sum(v) OVER (PARTITION BY k) AS kt, sum(v) OVER (PARTITION BY k, i) AS it
            FROM agg
        )
        SELECT k, i, bucket, v, kt, it FROM ({ranked})
        ORDER BY kt DESC, k, it DESC, i, bucket
    """
    rows = store.rows(sql, params)
    return [SeriesRow(r["k"], r["i"], naive(r["bucket"]), float(r["v"])) for r in rows]


def number_range(store: Store, spec: NumberRangeSpec) -> tuple[float, float] | None:
    rel = scoped_events(store.db, spec.project_id, spec.start_ms, spec.end_ms, events=spec.events)
    scope = _scope(spec.number, spec.where)
    where = compile_filter(spec.where, scope) if spec.where is not None else "1"
    number = compile_number(spec.number, scope)
    sql = f"""
        SELECT min(n) AS lo, max(n) AS hi, count() AS c FROM (
            SELECT {number} AS n FROM {_source(store, rel, scope)} WHERE {where}
        ) WHERE isFinite(n)
    """
    rows = store.rows(sql, rel.params)
    if not rows or not rows[0]["c"]:
        return None
    return float(rows[0]["lo"]), float(rows[0]["hi"])
