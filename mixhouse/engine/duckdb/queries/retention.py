"""Retention on DuckDB: births per user (first ever, or per cohort period for recurring), joined to the
user's later events; each return gets the index of its interval in the project's wall-clock time, so
a "day" is a calendar day even across a DST change. Only aggregates leave the engine."""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb

from mixhouse.domain.query.funnels import OVERALL
from mixhouse.domain.query.retention import AddictionSpec, CohortRow, EventRetentionSpec, RetentionSpec
from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.engine.duckdb.localtime import local_timestamp_sql
from mixhouse.engine.duckdb.lookups import lookup_joins
from mixhouse.engine.duckdb.property_columns import ready_slots
from mixhouse.engine.duckdb.relations import user_events
from mixhouse.expr.plan import EventExpr

# Births and returns are events under alias `e` (user[...] is not available in retention).
_SCOPE = Scope.events("e", lookups=True)


def _scope(conn: duckdb.DuckDBPyConnection, project_id: int) -> Scope:
    """Alias `e`, its slotted properties read from their columns (property_columns.py)."""
    return _SCOPE.with_slots(ready_slots(conn, project_id))


def _where(expr: EventExpr | None, scope: Scope = _SCOPE) -> str:
    return f"WHERE {compile_filter(expr, scope)}" if expr is not None else ""


def _segment_sql(expr: EventExpr | None, scope: Scope = _SCOPE) -> str | None:
    return compile_segment_key(expr, scope) if expr is not None else None


def local_sql(timezone: str, time_sql: str, start_ms: int | None = None, end_ms: int | None = None) -> str:
    """Wall-clock TIMESTAMP of an instant in `[start_ms, end_ms)` (open ends: see localtime)."""
    return local_timestamp_sql(time_sql, timezone, start_ms, end_ms)


def period_sql(unit: str, local: str, first_period: date) -> str:
    """The DATE start of the period of a wall-clock time no earlier than `first_period`: its day, its
    calendar month, or its week counted in 7 days from `first_period` (the domain chose its weekday)."""
    if unit == "month":
        return f"CAST(date_trunc('month', {local}) AS DATE)"
    if unit == "week":
        first = f"DATE '{first_period.isoformat()}'"
        return f"({first} + CAST(((CAST({local} AS DATE) - {first}) // 7) * 7 AS INTEGER))"
    return f"CAST({local} AS DATE)"


def _interval_index(spec: RetentionSpec, birth_local: str, return_local: str) -> str:
    if spec.unit == "month":
        months = (
            f"((year({return_local}) * 12 + month({return_local})) - (year({birth_local}) * 12 + month({birth_local})))"
        )
        whole = (
            f"({months} - CASE WHEN {return_local} < {birth_local} + to_months(CAST({months} AS INTEGER))"
            " THEN 1 ELSE 0 END)"
        )
        return f"({whole} // {spec.interval})"
    span_ms = spec.interval * (7 if spec.unit == "week" else 1) * 86_400_000
    return f"((epoch_ms({return_local}) - epoch_ms({birth_local})) // {span_ms})"


_DAY_MS = 86_400_000


def _returns_end_ms(spec: RetentionSpec) -> int:
    """No return after this can fall in a reported interval: the last birth plus every interval at its
    longest (31-day months), and a day for the zone's offset changes."""
    longest_unit_ms = {"day": _DAY_MS, "week": 7 * _DAY_MS, "month": 31 * _DAY_MS}[spec.unit]
    return spec.end_ms + (spec.interval_count + 1) * spec.interval * longest_unit_ms + _DAY_MS


def _seg(segment_sql: str | None) -> str:
    return segment_sql if segment_sql else "NULL::VARCHAR[]"


def retention_rows(conn: duckdb.DuckDBPyConnection, spec: RetentionSpec) -> list[CohortRow]:
    born_event = spec.born_event if spec.born_event is not None or not spec.compounded else spec.event
    born = user_events(
        conn,
        spec.project_id,
        None if not spec.compounded else spec.start_ms,
        spec.end_ms,
        events=[born_event] if born_event is not None else None,
        prefix="b",
    )
    ret = user_events(
        conn, spec.project_id, spec.start_ms, _returns_end_ms(spec), events=[spec.event] if spec.event else None
    )
    params: dict[str, Any] = {**born.params, **ret.params, "start": spec.start_ms}
    scope = _scope(conn, spec.project_id)
    born_where = _where(spec.born_where, scope)
    ret_where = _where(spec.where, scope)
    segment_sql = _segment_sql(spec.segment, scope)
    cohort = period_sql(spec.unit, local_sql(spec.timezone, "t", spec.start_ms, spec.end_ms), spec.first_period)
    # Births are kept only in [start, end): their local time needs the offsets of that span only.
    birth_local = local_sql(spec.timezone, "bt", spec.start_ms, spec.end_ms)
    key = "u, " + cohort if spec.compounded else "u"
    births = f"""
        SELECT u, min({{'t': t, 's': s}}).t AS bt, arg_min(segs, {{'t': t, 's': s}}) AS segs
        FROM (SELECT e.user_key AS u, e.time_ms AS t, e.seq AS s, {_seg(segment_sql)} AS segs
              FROM ({born.sql}) e {lookup_joins(_SCOPE, spec.segment, spec.born_where)} {born_where})
        GROUP BY {key}
        HAVING min(t) >= $start
    """
    fanned = f"""
        SELECT u, bt, {period_sql(spec.unit, birth_local, spec.first_period)} AS cohort, '{OVERALL}' AS seg
        FROM births
    """
    if segment_sql:
        fanned += f"""UNION ALL SELECT u, bt, {period_sql(spec.unit, birth_local, spec.first_period)} AS cohort,
                      unnest(segs) AS seg FROM births"""
    index = _interval_index(
        spec,
        local_sql(spec.timezone, "b.bt", spec.start_ms, spec.end_ms),
        local_sql(spec.timezone, "r.t", spec.start_ms),
    )
    ctes = f"""
        WITH births AS ({births}),
        cohorts AS ({fanned}),
        ret AS (SELECT e.user_key AS u, e.time_ms AS t FROM ({ret.sql}) e {lookup_joins(_SCOPE, spec.where)} {ret_where}),
        idx AS (
            SELECT DISTINCT b.u, b.cohort, b.seg, {index} AS i
            FROM cohorts b JOIN ret r ON r.u = b.u AND r.t > b.bt
        ),
        kept AS (SELECT * FROM idx WHERE i <= {spec.interval_count})
    """
    sql = f"""{ctes}
        SELECT 'first' AS kind, cohort, seg, 0 AS i, count(*) AS n FROM cohorts GROUP BY cohort, seg
        UNION ALL SELECT 'returned', cohort, seg, i, count(*) FROM kept GROUP BY cohort, seg, i
        UNION ALL SELECT 'reached', cohort, seg, m, count(*) FROM (
            SELECT cohort, seg, u, max(i) AS m FROM kept GROUP BY cohort, seg, u
        ) GROUP BY cohort, seg, m
    """
    size = spec.interval_count + 1
    table: dict[tuple[date, str], dict[str, Any]] = {}
    for kind, cohort_day, seg, i, n in conn.execute(sql, params).fetchall():
        cell = table.setdefault((cohort_day, seg), {"first": 0, "returned": [0] * size, "reached": [0] * size})
        if kind == "first":
            cell["first"] = int(n)
        else:
            cell[kind][int(i)] = int(n)
    return [
        CohortRow(day, seg, c["first"], tuple(c["returned"]), tuple(c["reached"])) for (day, seg), c in table.items()
    ]


def addiction_rows(conn: duckdb.DuckDBPyConnection, spec: AddictionSpec) -> list[tuple[date, str, int, int]]:
    rel = user_events(conn, spec.project_id, spec.start_ms, spec.end_ms, events=[spec.event] if spec.event else None)
    scope = _scope(conn, spec.project_id)
    where = _where(spec.where, scope)
    local = local_sql(spec.timezone, "e.time_ms", spec.start_ms, spec.end_ms)
    segment_sql = _segment_sql(spec.segment, scope)
    seg = f"unnest({segment_sql})" if segment_sql else None
    runs = [f"'{OVERALL}'"] + ([seg] if seg else [])
    parts = [
        f"""SELECT period, seg, slots, count(*) FROM (
                SELECT u, period, seg, count(DISTINCT slot) AS slots FROM (
                    SELECT e.user_key AS u, {period_sql(spec.unit, local, spec.first_period)} AS period,
                           date_trunc('{spec.addiction_unit}', {local}) AS slot,
                           {run} AS seg
                    FROM ({rel.sql}) e {lookup_joins(_SCOPE, spec.where, spec.segment)} {where}
                ) GROUP BY u, period, seg
            ) GROUP BY period, seg, slots"""
        for run in runs
    ]
    rows = conn.execute(" UNION ALL ".join(parts), rel.params).fetchall()
    return [(r[0], str(r[1]), int(r[2]), int(r[3])) for r in rows]


def event_retention_rows(conn: duckdb.DuckDBPyConnection, spec: EventRetentionSpec) -> list[tuple[str, date, int, int]]:
    rel = user_events(conn, spec.project_id, spec.start_ms, spec.end_ms, events=list(spec.events))
    local = local_sql(spec.timezone, "e.time_ms", spec.start_ms, spec.end_ms)
    period = period_sql(spec.unit, local, spec.first_period)
    # Periods later, counted on the period starts (weeks: 7 days apart, whatever weekday they start on).
    later = "(b.p - a.p) // 7" if spec.unit == "week" else f"datediff('{spec.unit}', a.p, b.p)"
    sql = f"""
        WITH act AS (SELECT DISTINCT e.event, e.user_key AS u, {period} AS p FROM ({rel.sql}) e)
        SELECT a.event, a.p, {later} AS k, count(*)
        FROM act a JOIN act b ON a.event = b.event AND a.u = b.u AND b.p >= a.p
        GROUP BY a.event, a.p, k
    """
    return [(str(r[0]), r[1], int(r[2]), int(r[3])) for r in conn.execute(sql, rel.params).fetchall()]
