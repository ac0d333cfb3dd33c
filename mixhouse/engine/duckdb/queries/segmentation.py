"""Segmentation on DuckDB: values per (key, inner key, local time bucket), top keys by total.

Every event is read from the resolved, deduplicated relation; its bucket is its instant in the project's
timezone truncated to the unit, and keys are unnested (a list property fans out, an undefined key drops
the event). Aggregation and ranking happen in one statement; each row carries its bucket's naive local
start, which the domain labels. Expressions are printed here, in the scope of alias `e` (and `u`, the
profile of the resolved id, joined only when an expression reads `user[...]`)."""

from __future__ import annotations

from typing import Any

import duckdb

from mixhouse.domain.query.params import CountType
from mixhouse.domain.query.segmentation import Measure, NumberRangeSpec, SeriesRow, SeriesSpec
from mixhouse.engine.duckdb.buckets import bucket_sql
from mixhouse.engine.duckdb.expressions import compile_filter, compile_number, compile_segment_key
from mixhouse.engine.duckdb.lookups import lookup_joins
from mixhouse.engine.duckdb.property_columns import ready_slots
from mixhouse.engine.duckdb.relations import Relation, user_events
from mixhouse.engine.duckdb.scope import PROFILE_ALIAS, Scope
from mixhouse.expr.plan import EventExpr, reads_distinct_id, reads_user

_COUNTS = {
    CountType.GENERAL: "count(*)",
    CountType.UNIQUE: "count(DISTINCT uk)",
    CountType.AVERAGE: "count(*) / count(DISTINCT uk)",
}
# A number expression at most this long is written out at each use rather than bound through a lambda.
_INLINE_NUMBER = 160
_MEASURES = {Measure.SUM: "sum(coalesce(x, 0))", Measure.AVERAGE: "avg(coalesce(x, 0))"}


def _scope(conn: duckdb.DuckDBPyConnection, project_id: int, *exprs: EventExpr | None) -> Scope:
    """Alias `e` for the event (its slotted properties read from columns); `u` for its profile when any of
    the expressions reads `user[...]`."""
    user = f"{PROFILE_ALIAS}.properties" if reads_user(*exprs) else None
    return Scope.events("e", user_properties_sql=user, lookups=True).with_slots(ready_slots(conn, project_id))


def _source(rel: Relation, scope: Scope, *exprs: EventExpr | None) -> str:
    # Lookup reads join their table's row after the relation (and the profile they may be keyed by).
    joins = lookup_joins(scope, *exprs)
    if scope.user_properties_sql is None:
        return f"({rel.sql}) e {joins}"
    # `user["x"]` reads the profile of the resolved id; no profile leaves it undefined.
    return (
        f"({rel.sql}) e LEFT JOIN profiles {PROFILE_ALIAS}"
        f" ON {PROFILE_ALIAS}.project_id = $r_project AND {PROFILE_ALIAS}.distinct_id = e.distinct_id {joins}"
    )


def _key(spec: SeriesSpec, scope: Scope, params: dict[str, Any]) -> tuple[str, bool]:
    """SQL of the event's keys, and whether it is one VARCHAR (NULL: no key) rather than a VARCHAR[]:
    a numeric range or the event name is one key, and skips building and unnesting a list per row."""
    if spec.numeric is not None:
        n = spec.numeric
        params.update(lower=n.lower, width=n.width, nbuckets=n.count)
        number = compile_number(n.number, scope)

        def key(x: str) -> str:  # only a finite number has a range
            index = f"CAST(least(greatest(floor(({x} - $lower) / $width), 0), $nbuckets - 1) AS BIGINT)::VARCHAR"
            return f"CASE WHEN isfinite({x}) THEN {index} END"

        if len(number) <= _INLINE_NUMBER:  # a column (a slotted property): written out twice
            return f"({key(f'({number})')})", True
        return f"list_transform([{number}], lambda nb_x: {key('nb_x')})[1]", True
    if spec.key is not None:
        return compile_segment_key(spec.key, scope), False
    return "e.event", True


def _needs_identity(spec: SeriesSpec, scope: Scope) -> bool:
    """Whether the answer can depend on the resolved id: uniques, `user[...]`, or an expression reading the
    id. Event counts and sums do not, and skip the identity-map join (a hash probe per event)."""
    if spec.measure is Measure.COUNT and spec.count_type is not CountType.GENERAL:
        return True
    if scope.user_properties_sql is not None:
        return True
    return reads_distinct_id(*spec.expressions())


def series_rows(conn: duckdb.DuckDBPyConnection, spec: SeriesSpec) -> list[SeriesRow]:
    buckets = spec.buckets
    scope = _scope(conn, spec.project_id, *spec.expressions())
    rel = user_events(
        conn,
        spec.project_id,
        buckets.start_ms,
        buckets.end_ms,
        events=spec.events,
        resolve_identity=_needs_identity(spec, scope),
    )
    params: dict[str, Any] = dict(rel.params)
    # Printed in the order the parameters are read (`where` first), so that an error names the first.
    where = compile_filter(spec.where, scope) if spec.where is not None else "TRUE"
    bucket = bucket_sql(buckets, "e.time_ms", params)
    keys, scalar = _key(spec, scope, params)
    if spec.values is not None:
        params["wanted"] = list(spec.values)
        if scalar:
            keys = f"CASE WHEN list_contains($wanted, {keys}) THEN {keys} END"
        else:
            keys = f"list_filter({keys}, lambda w_k: list_contains($wanted, w_k))"
    inner = compile_segment_key(spec.inner, scope) if spec.inner is not None else None
    value = compile_number(spec.value, scope) if spec.value is not None else "CAST(NULL AS DOUBLE)"
    aggregate = _COUNTS[spec.count_type] if spec.measure is Measure.COUNT else _MEASURES[spec.measure]
    ranked = ""
    if spec.limit is not None:
        params["limit"] = spec.limit
        ranked = """
            , top_keys AS (SELECT k FROM agg GROUP BY k ORDER BY sum(v) DESC, k LIMIT $limit)
        """
        if spec.inner is not None:
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
        if spec.inner is not None:
            filters.append("(k, i) IN (SELECT (k, i) FROM top_inner)")
    final_where = f"WHERE {' AND '.join(filters)}" if filters else ""
    source = _source(rel, scope, *spec.expressions())
    # A list of keys fans out (one row per key); a single key or no inner key needs no unnest.
    if scalar:
        outer_keys = "SELECT uk, bucket, x, inner_keys, ks AS k FROM src WHERE ks IS NOT NULL"
    else:
        outer_keys = "SELECT uk, bucket, x, inner_keys, unnest(ks) AS k FROM src"
    if inner is not None:
        both_keys = "SELECT uk, bucket, x, k, unnest(inner_keys) AS i FROM outer_keys"
    else:
        both_keys = "SELECT uk, bucket, x, k FROM outer_keys"
    # Without an inner key, grouping on a column of NULLs cost a third of the grouping (10M events).
    agg = (
        f"SELECT k, i, bucket, CAST({aggregate} AS DOUBLE) AS v FROM both_keys GROUP BY k, i, bucket"
        if inner is not None
        else f"SELECT k, CAST(NULL AS VARCHAR) AS i, bucket, CAST({aggregate} AS DOUBLE) AS v FROM both_keys GROUP BY k, bucket"
    )
    sql = f"""
        WITH src AS (
            SELECT e.user_key AS uk, {bucket} AS bucket, {value} AS x, {keys} AS ks,
                   {inner or "CAST(NULL AS VARCHAR)"} AS inner_keys
            FROM {source}
            WHERE {where}
        ),
        outer_keys AS ({outer_keys}),
        both_keys AS ({both_keys}),
        agg AS ({agg})
        {ranked}
        SELECT k, i, bucket, v
        FROM agg
        {final_where}
        ORDER BY sum(v) OVER (PARTITION BY k) DESC, k, sum(v) OVER (PARTITION BY k, i) DESC, i, bucket
    """
    rows = conn.execute(sql, params).fetchall()
    return [SeriesRow(r[0], r[1], r[2], float(r[3])) for r in rows]


def number_range(conn: duckdb.DuckDBPyConnection, spec: NumberRangeSpec) -> tuple[float, float] | None:
    scope = _scope(conn, spec.project_id, spec.number, spec.where)
    # The range depends on the resolved id only when an expression reads it (or the profile).
    needs_identity = scope.user_properties_sql is not None or reads_distinct_id(spec.number, spec.where)
    rel = user_events(
        conn, spec.project_id, spec.start_ms, spec.end_ms, events=spec.events, resolve_identity=needs_identity
    )
    where = compile_filter(spec.where, scope) if spec.where is not None else "TRUE"
    number = compile_number(spec.number, scope)
    sql = f"""
        SELECT min(n), max(n) FROM (
            SELECT {number} AS n FROM {_source(rel, scope, spec.number, spec.where)} WHERE {where}
        ) WHERE isfinite(n)
    """
    row = conn.execute(sql, rel.params).fetchone()
    if row is None or row[0] is None:
        return None
    return float(row[0]), float(row[1])
