"""Retention on ClickHouse, as the embedded engine answers it (mixhouse/engine/duckdb/queries/retention.py):
births per user (first ever, or per cohort period when compounded), joined to the user's later events;
each return gets the index of its interval in the project's wall-clock time. Wall-clock times are Int64
"local epoch ms" (the instant plus the zone's offset, from the offsets worked out once per query); cohort
periods are day numbers since 1970-01-01. Only aggregates leave ClickHouse."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from mixhouse.domain.query.funnels import OVERALL
from mixhouse.domain.query.retention import AddictionSpec, CohortRow, EventRetentionSpec, RetentionSpec
from mixhouse.engine.clickhouse.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.engine.clickhouse.queries.buckets import DAY_MS
from mixhouse.engine.clickhouse.relations import scoped_events
from mixhouse.engine.clickhouse.store import Store
from mixhouse.engine.common.localtime import offset_ms_sql
from mixhouse.expr.plan import EventExpr

_SCOPE = Scope.events("e")  # user[...] is not available in retention
_EPOCH = date(1970, 1, 1)


def _where(expr: EventExpr | None) -> str:
    return f"WHERE {compile_filter(expr, _SCOPE)}" if expr is not None else ""


def _local(timezone: str, time_sql: str, start_ms: int | None = None, end_ms: int | None = None) -> str:
    return f"({time_sql} + {offset_ms_sql(time_sql, timezone, start_ms, end_ms)})"


def _period(unit: str, local: str, first_period: date) -> str:
    """Int64 day number of the start of the period of a local time no earlier than `first_period`."""
    day = f"intDiv({local}, {DAY_MS})"
    if unit == "month":
        return f"toInt64(toStartOfMonth(toDate(toInt32({day}))))"
    if unit == "week":
        first = (first_period - _EPOCH).days
        return f"toInt64({first} + intDiv({day} - {first}, 7) * 7)"
    return f"toInt64({day})"


def _interval_index(spec: RetentionSpec, birth_local: str, return_local: str) -> str:
    if spec.unit == "month":
        b = f"fromUnixTimestamp64Milli(toInt64({birth_local}), 'UTC')"
        r = f"fromUnixTimestamp64Milli(toInt64({return_local}), 'UTC')"
        months = f"((toYear({r}) * 12 + toMonth({r})) - (toYear({b}) * 12 + toMonth({b})))"
        whole = f"({months} - if({r} < addMonths({b}, {months}), 1, 0))"
        return f"intDiv({whole}, {spec.interval})"
    span_ms = spec.interval * (7 if spec.unit == "week" else 1) * DAY_MS
    return f"intDiv({return_local} - {birth_local}, {span_ms})"


def _returns_end_ms(spec: RetentionSpec) -> int:
    longest_unit_ms = {"day": DAY_MS, "week": 7 * DAY_MS, "month": 31 * DAY_MS}[spec.unit]
    return spec.end_ms + (spec.interval_count + 1) * spec.interval * longest_unit_ms + DAY_MS


def retention_rows(store: Store, spec: RetentionSpec) -> list[CohortRow]:
    born_event = spec.born_event if spec.born_event is not None or not spec.compounded else spec.event
    born = scoped_events(
        store.db,
        spec.project_id,
        None if not spec.compounded else spec.start_ms,
        spec.end_ms,
        events=[born_event] if born_event is not None else None,
        prefix="b",
    )
    ret = scoped_events(
        store.db, spec.project_id, spec.start_ms, _returns_end_ms(spec), events=[spec.event] if spec.event else None
    )
    params: dict[str, Any] = {**born.params, **ret.params, "start": spec.start_ms}
    segment_sql = compile_segment_key(spec.segment, _SCOPE) if spec.segment is not None else None
    segs = segment_sql or "CAST([] AS Array(String))"
    cohort_of_t = _period(spec.unit, _local(spec.timezone, "t", spec.start_ms, spec.end_ms), spec.first_period)
    birth_local = _local(spec.timezone, "bt", spec.start_ms, spec.end_ms)
    group = f"u, {cohort_of_t}" if spec.compounded else "u"
    births = f"""
        SELECT u, argMin(t, (t, s)) AS bt, argMin(segs, (t, s)) AS segs
        FROM (SELECT e.user_key AS u, e.time_ms AS t, e.seq AS s, {segs} AS segs
              FROM ({born.sql}) AS e {_where(spec.born_where)})
        GROUP BY {group}
        HAVING min(t) >= {{start:Int64}}
    """
    cohort = _period(spec.unit, birth_local, spec.first_period)
    fanned = f"SELECT u, bt, {cohort} AS cohort, '{OVERALL}' AS seg FROM births"
    if segment_sql:
        fanned += f" UNION ALL SELECT u, bt, {cohort} AS cohort, arrayJoin(segs) AS seg FROM births"
    size = spec.interval_count + 1
    index = _interval_index(
        spec,
        _local(spec.timezone, "b.bt", spec.start_ms, spec.end_ms),
        _local(spec.timezone, "r.t", spec.start_ms),
    )
    sql = f"""
        WITH births AS ({births}),
        cohorts AS ({fanned}),
        ret AS (SELECT e.user_key AS u, e.time_ms AS t FROM ({ret.sql}) AS e {_where(spec.where)}),
        idx AS (
            SELECT DISTINCT b.u AS u, b.cohort AS cohort, b.seg AS seg, {index} AS i
            FROM cohorts AS b INNER JOIN ret AS r ON r.u = b.u WHERE r.t > b.bt
        ),
        kept AS (
            SELECT cohort, seg, u, groupArray(i) AS ks FROM idx WHERE i <= {spec.interval_count} GROUP BY cohort, seg, u
        )
        SELECT 'first' AS kind, cohort, seg, count() AS n, CAST([] AS Array(UInt64)) AS returned,
               CAST([] AS Array(UInt64)) AS reached
        FROM cohorts GROUP BY cohort, seg
        UNION ALL
        SELECT 'returns' AS kind, cohort, seg, toUInt64(0) AS n,
               sumForEach(arrayMap(j -> toUInt64(has(ks, j)), range({size}))) AS returned,
               sumForEach(arrayMap(j -> toUInt64(arrayMax(ks) = j), range({size}))) AS reached
        FROM kept GROUP BY cohort, seg
    """
    # One pass over the per-user intervals (`kept`) gives both the returns and the furthest interval reached:
    # ClickHouse evaluates a CTE at each use, and the join of births and returns is most of the query.
    table: dict[tuple[date, str], dict[str, Any]] = {}
    for row in store.rows(sql, params):
        day = _EPOCH + timedelta(days=int(row["cohort"]))
        cell = table.setdefault((day, str(row["seg"])), {"first": 0, "returned": [0] * size, "reached": [0] * size})
        if row["kind"] == "first":
            cell["first"] = int(row["n"])
        else:
            cell["returned"] = [int(n) for n in row["returned"]]
            cell["reached"] = [int(n) for n in row["reached"]]
    return [
        CohortRow(day, seg, c["first"], tuple(c["returned"]), tuple(c["reached"])) for (day, seg), c in table.items()
    ]


def addiction_rows(store: Store, spec: AddictionSpec) -> list[tuple[date, str, int, int]]:
    """Per (period, segment): how many users were active in how many distinct slots (hours or days)."""
    rel = scoped_events(
        store.db, spec.project_id, spec.start_ms, spec.end_ms, events=[spec.event] if spec.event else None
    )
    local = _local(spec.timezone, "e.time_ms", spec.start_ms, spec.end_ms)
    slot_ms = {"hour": 3_600_000, "day": DAY_MS}[spec.addiction_unit]
    segment_sql = compile_segment_key(spec.segment, _SCOPE) if spec.segment is not None else None
    runs = [f"'{OVERALL}'"] + ([f"arrayJoin({segment_sql})"] if segment_sql else [])
    parts = [
        f"""SELECT period, seg, slots, count() AS n FROM (
                SELECT u, period, seg, uniqExact(slot) AS slots FROM (
                    SELECT e.user_key AS u, {_period(spec.unit, local, spec.first_period)} AS period,
                           intDiv({local}, {slot_ms}) AS slot, {run} AS seg
                    FROM ({rel.sql}) AS e {_where(spec.where)}
                ) GROUP BY u, period, seg
            ) GROUP BY period, seg, slots"""
        for run in runs
    ]
    rows = store.rows(" UNION ALL ".join(parts), rel.params)
    return [(_EPOCH + timedelta(days=int(r["period"])), str(r["seg"]), int(r["slots"]), int(r["n"])) for r in rows]


def event_retention_rows(store: Store, spec: EventRetentionSpec) -> list[tuple[str, date, int, int]]:
    rel = scoped_events(store.db, spec.project_id, spec.start_ms, spec.end_ms, events=list(spec.events))
    local = _local(spec.timezone, "e.time_ms", spec.start_ms, spec.end_ms)
    period = _period(spec.unit, local, spec.first_period)
    # Periods later, counted on the period starts (weeks: 7 days apart, whatever weekday they start on).
    if spec.unit == "week":
        later = "intDiv(b.p - a.p, 7)"
    elif spec.unit == "month":
        later = "dateDiff('month', addDays(toDate('1970-01-01'), a.p), addDays(toDate('1970-01-01'), b.p))"
    else:
        later = "b.p - a.p"
    sql = f"""
        WITH act AS (SELECT DISTINCT e.event AS event, e.user_key AS u, {period} AS p FROM ({rel.sql}) AS e)
        SELECT a.event AS event, a.p AS p, toInt64({later}) AS k, count() AS n
        FROM act AS a INNER JOIN act AS b ON a.event = b.event AND a.u = b.u
        WHERE b.p >= a.p
        GROUP BY event, p, k
    """
    return [
        (str(r["event"]), _EPOCH + timedelta(days=int(r["p"])), int(r["k"]), int(r["n"]))
        for r in store.rows(sql, rel.params)
    ]
