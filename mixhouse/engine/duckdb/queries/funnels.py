"""Funnels on DuckDB: DuckDB filters the events, resolves identities on user keys and evaluates every
step's expressions; the per-user, time-ordered walk with Mixpanel's rules runs in the compiled kernel
(mixhouse/engine/kernels/funnel.py) over the rows it hands over as Arrow columns. No Python touches an
event: numpy sums the kernel's attempts into counts and mean times per (bucket, segment).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from mixhouse.domain.limits import remaining_seconds
from mixhouse.domain.query.funnels import FunnelSpec, StepFigures, StepPropertyNamesSpec
from mixhouse.engine import kernels
from mixhouse.engine.common.funnels import kernel_columns as _columns
from mixhouse.engine.common.funnels import step_figures as _figures
from mixhouse.engine.duckdb import property_columns
from mixhouse.engine.duckdb.buckets import bucket_day_sql
from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.engine.duckdb.lookups import lookup_joins
from mixhouse.engine.duckdb.printer import quote
from mixhouse.engine.duckdb.property_columns import ready_slots
from mixhouse.engine.duckdb.relations import has_merged_ids, scoped_events
from mixhouse.engine.kernels.funnel import ENTRY_SHIFT, walk_funnel
from mixhouse.engine.kernels.users import partition_by_user
from mixhouse.expr.plan import EventExpr, reads_distinct_id

# The rows of the step scan: events under alias `e` (user[...] is not available in funnels).
_SCOPE = Scope.events("e", lookups=True)


def _scope(conn: duckdb.DuckDBPyConnection, project_id: int) -> Scope:
    """Alias `e`, its slotted properties read from their columns (property_columns.py)."""
    return _SCOPE.with_slots(ready_slots(conn, project_id))


def _filter(expr: EventExpr | None, scope: Scope = _SCOPE) -> str | None:
    return compile_filter(expr, scope) if expr is not None else None


def bucket_sql(spec: FunnelSpec, time_sql: str) -> str:
    """The DATE key of an entry time: its day in the project zone, grouped as the spec's buckets say (an
    entry's day is never before the first bucket's start)."""
    return bucket_day_sql(spec.buckets, time_sql)


def _rows_sql(
    spec: FunnelSpec, base: date, resolve_identity: bool, scope: Scope = _SCOPE
) -> tuple[str, dict[str, Any]]:
    """The rows the funnel kernel walks: per event that matches a step, its user key, time, seq and
    INFO (step mask, entry bucket; see kernels/funnel.py); with `on`, one extra row per segment value
    of each step-1 event that can start an attempt. Identities are resolved on keys, so `distinct_id`
    is never read unless an expression asks for it."""
    n = len(spec.steps)
    rel = scoped_events(
        spec.project_id,
        spec.start_ms - spec.grace_ms * (n - 1),
        spec.end_ms + spec.window_ms + 1,
        events=sorted({s.event for s in spec.steps}),
        resolve_identity=resolve_identity,
        keyed=True,
    )
    params: dict[str, Any] = {**rel.params, "f_start": spec.start_ms, "f_end": spec.end_ms}
    # The step mask: one CASE on the event name for the steps without a filter (a name can be several
    # steps), one term per step with a filter.
    plain: dict[str, int] = {}
    terms = []
    for i, step in enumerate(spec.steps):
        step_sql = _filter(step.where, scope)
        if step_sql:
            terms.append(f"CASE WHEN e.event = {quote(step.event)} AND ({step_sql}) THEN {1 << i} ELSE 0 END")
        else:
            plain[step.event] = plain.get(step.event, 0) | 1 << i
    if plain:
        whens = " ".join(f"WHEN {quote(name)} THEN {bits}" for name, bits in plain.items())
        terms.append(f"CASE e.event {whens} ELSE 0 END")
    where_sql = _filter(spec.where, scope)
    where = f"WHERE {where_sql}" if where_sql else ""
    # Bucket keys are counted in days from `base`, + 1 so that 0 means "cannot start an attempt".
    bucket = f"CAST({bucket_sql(spec, 't')} - DATE '{base.isoformat()}' AS BIGINT) + 1"
    entry = f"CASE WHEN mask & 1 = 1 AND t >= $f_start AND t < $f_end THEN {bucket} ELSE 0 END"
    info = f"mask | ({entry} << {ENTRY_SHIFT})"
    # The segments of a step-1 event that can start an attempt (see _columns for the lane rows).
    segment_sql = compile_segment_key(spec.segment, scope) if spec.segment is not None else None
    segs = f", CASE WHEN {entry} > 0 THEN {segment_sql} END AS segs" if segment_sql else ""
    # The mask is computed one level down so that the expressions above can read it by name.
    sql = f"""
        SELECT k, t, s, {info} AS info {segs} FROM (
            SELECT e.user_key AS k, e.time_ms AS t, e.seq AS s, CAST({" | ".join(terms)} AS BIGINT) AS mask,
                   e.properties, e.distinct_id, e.time_ms, {property_columns.select_list()}
            FROM ({rel.sql}) e {lookup_joins(_SCOPE, spec.where, *(s.where for s in spec.steps))} {where}
        ) e {lookup_joins(_SCOPE, spec.segment)} {"WHERE mask <> 0" if any(s.where is not None for s in spec.steps) else ""}
    """
    return sql, params


def funnel_figures(conn: duckdb.DuckDBPyConnection, spec: FunnelSpec) -> list[StepFigures]:
    base = spec.buckets.first_day - timedelta(days=62)  # before any key of the range
    # Merged ids are resolved by the kernel from the (small) alias table, rather than by a join of every
    # event in DuckDB, unless an expression reads the id itself (it must see the canonical id).
    merged = has_merged_ids(conn, spec.project_id)
    in_sql = merged and reads_distinct_id(spec.where, spec.segment, *(step.where for step in spec.steps))
    sql, params = _rows_sql(spec, base, resolve_identity=in_sql, scope=_scope(conn, spec.project_id))
    chunks, segments = _columns(conn.sql(sql, params=params).to_arrow_table())
    kernels.wait_until_ready(remaining_seconds())
    data = partition_by_user(chunks, aliases=_aliases(conn, spec.project_id) if merged and not in_sql else None)
    del chunks  # the Arrow result: the partitioned copy is all the walk needs
    try:
        attempts = walk_funnel(data, len(spec.steps), spec.window_ms, spec.grace_ms, spec.totals)
    finally:
        data.release()
    return _figures(attempts, len(spec.steps), base, segments)


def _aliases(conn: duckdb.DuckDBPyConnection, project_id: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The project's merged ids as (key, canonical key) pairs."""
    table = conn.sql(
        "SELECT distinct_key AS k, canonical_key AS c FROM identity_map WHERE project_id = $project",
        params={"project": project_id},
    ).to_arrow_table()
    k, c = (table.column(name).combine_chunks().to_numpy().view(np.int64) for name in ("k", "c"))
    return k, c


def step_property_names(conn: duckdb.DuckDBPyConnection, spec: StepPropertyNamesSpec) -> list[tuple[str, int]]:
    rel = scoped_events(spec.project_id, spec.start_ms, spec.end_ms, events=[spec.step.event])
    step_sql = _filter(spec.step.where, _scope(conn, spec.project_id))
    where = f"WHERE {step_sql}" if step_sql else ""
    rows = conn.execute(
        f"""SELECT k, count(*) AS n FROM (SELECT unnest(json_keys(e.properties)) AS k FROM ({rel.sql}) e {where})
            GROUP BY k ORDER BY n DESC, k LIMIT $limit""",
        {**rel.params, "limit": spec.limit},
    ).fetchall()
    return [(str(k), int(n)) for k, n in rows]
