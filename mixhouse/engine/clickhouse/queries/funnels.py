"""Funnels on ClickHouse: ClickHouse filters the events, resolves identities and evaluates every step's
expressions; the per-user, time-ordered walk with Mixpanel's rules runs in the same compiled kernel as on
the embedded engine (mixhouse/engine/kernels/funnel.py), over the rows handed over as Arrow columns. Not
`windowFunnel`: its rules (one attempt, no re-entry, no exclusions) are not Mixpanel's.

On a cluster the row query runs on every shard (events are sharded by user, so each user's rows come from
one shard) and the initiator concatenates them; the walk is per user, so it could run per shard too."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from mixhouse.domain.calendar import Unit
from mixhouse.domain.limits import remaining_seconds
from mixhouse.domain.query.funnels import FunnelSpec, StepFigures, StepPropertyNamesSpec
from mixhouse.engine import kernels
from mixhouse.engine.clickhouse.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.engine.clickhouse.printer import quote
from mixhouse.engine.clickhouse.queries.buckets import DAY_MS
from mixhouse.engine.clickhouse.relations import scoped_events
from mixhouse.engine.clickhouse.store import Store
from mixhouse.engine.common.funnels import kernel_columns, step_figures
from mixhouse.engine.common.localtime import offset_ms_sql
from mixhouse.engine.kernels.funnel import ENTRY_SHIFT, walk_funnel
from mixhouse.engine.kernels.users import partition_by_user
from mixhouse.expr.plan import EventExpr

_SCOPE = Scope.events("e")  # user[...] is not available in funnels


def _filter(expr: EventExpr | None) -> str | None:
    return compile_filter(expr, _SCOPE) if expr is not None else None


def _day_sql(spec: FunnelSpec, time_sql: str) -> str:
    """Int64 days since 1970-01-01 of the entry bucket of `time_sql`, in the project zone: its day, month,
    or `every_days` step from the anchor the domain gives (the week rule is the domain's)."""
    buckets = spec.buckets
    offset = offset_ms_sql(time_sql, buckets.timezone, buckets.start_ms, buckets.end_ms)
    day = f"intDiv({time_sql} + {offset}, {DAY_MS})"
    if buckets.every_days and buckets.every_days > 1:
        assert buckets.anchor is not None
        anchor, n = (buckets.anchor - date(1970, 1, 1)).days, buckets.every_days
        return f"({anchor} + intDiv({day} - {anchor}, {n}) * {n})"
    if buckets.every_days or buckets.unit is Unit.DAY:
        return day
    if buckets.unit is Unit.MONTH:
        return f"toInt64(toStartOfMonth(toDate(toInt32({day}))))"
    raise ValueError(f"{buckets.unit.value} buckets have no day key")


def _rows_sql(store: Store, spec: FunnelSpec, base: date) -> tuple[str, dict[str, Any]]:
    """The rows the kernel walks: (k, t, s, info[, segs]) as on the embedded engine."""
    n = len(spec.steps)
    rel = scoped_events(
        store.db,
        spec.project_id,
        spec.start_ms - spec.grace_ms * (n - 1),
        spec.end_ms + spec.window_ms + 1,
        events=sorted({s.event for s in spec.steps}),
    )
    params: dict[str, Any] = {**rel.params, "f_start": spec.start_ms, "f_end": spec.end_ms}
    plain: dict[str, int] = {}
    terms = []
    for i, step in enumerate(spec.steps):
        step_sql = _filter(step.where)
        if step_sql:
            terms.append(f"if(e.event = {quote(step.event)} AND ({step_sql}), {1 << i}, 0)")
        else:
            plain[step.event] = plain.get(step.event, 0) | 1 << i
    if plain:
        whens = ", ".join(f"e.event = {quote(name)}, {bits}" for name, bits in plain.items())
        terms.append(f"multiIf({whens}, 0)")
    where_sql = _filter(spec.where)
    where = f"WHERE {where_sql}" if where_sql else ""
    base_day = (base - date(1970, 1, 1)).days
    bucket = f"({_day_sql(spec, 't')} - {base_day} + 1)"
    entry = f"if(bitAnd(mask, 1) = 1 AND t >= {{f_start:Int64}} AND t < {{f_end:Int64}}, {bucket}, 0)"
    info = f"bitOr(mask, bitShiftLeft(toInt64({entry}), {ENTRY_SHIFT}))"
    segment_sql = compile_segment_key(spec.segment, _SCOPE) if spec.segment is not None else None
    segs = f", if({entry} > 0, {segment_sql}, CAST([] AS Array(String))) AS segs" if segment_sql else ""
    filtered = "WHERE mask != 0" if any(s.where is not None for s in spec.steps) else ""
    sql = f"""
        SELECT k, t, s, toInt64({info}) AS info {segs} FROM (
            SELECT e.user_key AS k, e.time_ms AS t, e.seq AS s, toInt64({" + ".join(terms)}) AS mask,
                   e.properties AS properties, e.distinct_id AS distinct_id, e.time_ms AS time_ms
            FROM ({rel.sql}) AS e {where}
        ) AS e {filtered}
    """
    return sql, params


def funnel_figures(store: Store, spec: FunnelSpec) -> list[StepFigures]:
    base = spec.buckets.first_day - timedelta(days=62)  # before any key of the range
    sql, params = _rows_sql(store, spec, base)
    chunks, segments = kernel_columns(store.driver.arrow(sql, params))
    kernels.wait_until_ready(remaining_seconds())
    data = partition_by_user(chunks, aliases=None)
    del chunks
    try:
        attempts = walk_funnel(data, len(spec.steps), spec.window_ms, spec.grace_ms, spec.totals)
    finally:
        data.release()
    return step_figures(attempts, len(spec.steps), base, segments)


def step_property_names(store: Store, spec: StepPropertyNamesSpec) -> list[tuple[str, int]]:
    rel = scoped_events(store.db, spec.project_id, spec.start_ms, spec.end_ms, events=[spec.step.event])
    step_sql = _filter(spec.step.where)
    where = f"WHERE {step_sql}" if step_sql else ""
    rows = store.rows(
        f"""SELECT k, count() AS n FROM (SELECT arrayJoin(JSONExtractKeys(e.properties)) AS k FROM ({rel.sql}) AS e {where})
            GROUP BY k ORDER BY n DESC, k LIMIT {{limit:UInt64}}""",
        {**rel.params, "limit": spec.limit},
    )
    return [(str(r["k"]), int(r["n"])) for r in rows]
