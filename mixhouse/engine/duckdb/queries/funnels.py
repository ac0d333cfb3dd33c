"""Funnels on DuckDB: a per-user, time-ordered scan written as SQL joins.

Per entry (a step-1 event: the first in its bucket for uniques, every one for totals) step k+1 is the
earliest of the user's step-(k+1) events that is not earlier than 2 s before step k, not later than
the entry + window, and not an event already used by an earlier step: one hash join on the user per
step, over the attempts that reached step k only, then `min` per attempt. The whole scan is vectorised
by DuckDB with no per-event Python. Totals then chain attempts: the next entry is the first step-1
event after the previous attempt's exit (its conversion, or the end of its window), followed by a
recursive CTE.
"""

from __future__ import annotations

from typing import Any

import duckdb

from mixhouse.domain.query.funnels import OVERALL, FunnelSpec, StepFigures, StepPropertyNamesSpec
from mixhouse.engine.duckdb.localtime import local_timestamp_sql
from mixhouse.engine.duckdb.relations import scoped_events


def bucket_sql(spec: FunnelSpec, time_sql: str) -> str:
    """The DATE key of an entry time: its day in the project zone, grouped as the spec says."""
    local = local_timestamp_sql(time_sql, spec.buckets.timezone, spec.start_ms, spec.end_ms)
    day = f"CAST({local} AS DATE)"
    if spec.buckets.unit == "week":
        return f"CAST(date_trunc('week', {day}) AS DATE)"
    if spec.buckets.unit == "month":
        return f"CAST(date_trunc('month', {day}) AS DATE)"
    if spec.buckets.days == 1:
        return day
    first = spec.buckets.first.isoformat()
    return (
        f"(DATE '{first}' + CAST(((({day}) - DATE '{first}') // {spec.buckets.days}) * {spec.buckets.days} AS INTEGER))"
    )


def _scan_sql(spec: FunnelSpec) -> tuple[str, dict[str, Any]]:
    """One statement for `$overall` (ov) and, with `on`, every segment: one scan of the events for both."""
    n = len(spec.steps)
    lookback = spec.grace_ms * (n - 1)
    rel = scoped_events(
        spec.project_id,
        spec.start_ms - lookback,
        spec.end_ms + spec.window_ms + 1,
        events=sorted({s.event for s in spec.steps}),
    )
    params: dict[str, Any] = {**rel.params, "f_start": spec.start_ms, "f_end": spec.end_ms}
    flags = []
    for i, step in enumerate(spec.steps, start=1):
        params[f"f_ev{i}"] = step.event
        cond = f"e.event = $f_ev{i}" + (f" AND ({step.where_sql})" if step.where_sql else "")
        flags.append(f"({cond}) AS f{i}")
    where = f"WHERE {spec.where_sql}" if spec.where_sql else ""
    seg = f"CASE WHEN f1 THEN {spec.segment_sql} END" if spec.segment_sql else "NULL::VARCHAR[]"
    # Flags are computed one level down so that the CASE below can read f1 by name.
    ev = f"""
        SELECT u, t, s, {", ".join(f"f{i}" for i in range(1, n + 1))}, {seg} AS segs FROM (
            SELECT e.distinct_id AS u, e.time_ms AS t, e.seq AS s, e.properties, e.distinct_id, e.time_ms,
                   {", ".join(flags)}
            FROM ({rel.sql}) e {where}
        ) e
    """
    firsts = "ev WHERE f1 AND t >= $f_start AND t < $f_end"
    # ov marks the `$overall` rows, so that no segment value can be taken for them.
    starts = f"SELECT u, t, s, TRUE AS ov, '{OVERALL}' AS seg FROM {firsts}"
    if spec.segment_sql:
        starts += f" UNION ALL SELECT u, t, s, FALSE AS ov, unnest(segs) AS seg FROM {firsts}"
    step1 = f"""SELECT u, t, s, ov, seg, {bucket_sql(spec, "t")} AS b FROM ({starts})"""
    if spec.totals:
        entries = f"SELECT u, ov, seg, b, {{'t': t, 's': s}} AS c1 FROM ({step1})"
    else:
        entries = f"SELECT u, ov, seg, b, min({{'t': t, 's': s}}) AS c1 FROM ({step1}) GROUP BY u, ov, seg, b"
    # Stage k adds c_k: one join of the attempts that reached step k-1 with the user's step-k events.
    # Attempts get an integer id so that the per-attempt minimum groups on it, not on the user's text id;
    # materialized, so that every reader sees the same ids.
    ctes = [f"ev AS ({ev})", f"entries AS ({entries})"]
    ctes.append("stage1 AS MATERIALIZED (SELECT row_number() OVER () AS id, u, ov, seg, b, c1 FROM entries)")
    for k in range(2, n + 1):
        used = " AND ".join(f"x.s <> st.c{j}.s" for j in range(1, k))
        ctes.append(
            f"m{k} AS (SELECT st.id, min({{'t': x.t, 's': x.s}}) AS c{k} "
            f"FROM stage{k - 1} st JOIN ev x ON x.f{k} AND x.u = st.u AND x.t >= st.c{k - 1}.t - {spec.grace_ms} "
            f"AND x.t <= st.c1.t + {spec.window_ms} AND {used} WHERE st.c{k - 1} IS NOT NULL GROUP BY st.id)"
        )
        ctes.append(f"stage{k} AS MATERIALIZED (SELECT st.*, m.c{k} FROM stage{k - 1} st LEFT JOIN m{k} m USING (id))")
    attempts = f"stage{n}"
    if spec.totals:
        ctes += _totals_ctes(spec, n, attempts)
        attempts = "chosen"
    counts = ", ".join(f"count(c{k})" for k in range(1, n + 1))
    avg = ", ".join(["NULL::DOUBLE"] + [f"avg(c{k}.t - c{k - 1}.t)" for k in range(2, n + 1)])
    avg_start = ", ".join(["NULL::DOUBLE"] + [f"avg(c{k}.t - c1.t)" for k in range(2, n + 1)])
    sql = (
        f"WITH RECURSIVE {', '.join(ctes)} "
        f"SELECT b, ov, seg, [{counts}], [{avg}], [{avg_start}] FROM {attempts} GROUP BY b, ov, seg"
    )
    return sql, params


def _totals_ctes(spec: FunnelSpec, n: int, attempts: str) -> list[str]:
    """Keep the chain of attempts: the first step-1, then the first step-1 after each attempt's exit."""
    times = ", ".join(f"c{k}.t" for k in range(1, n + 1))
    exit_sql = f"CASE WHEN c{n} IS NOT NULL THEN greatest({times}) ELSE c1.t + {spec.window_ms} END"
    return [
        f"cand AS (SELECT *, {exit_sql} AS exit_t FROM {attempts})",
        # The chain follows attempt ids; the earliest (t, seq) wins among step-1 events at one instant.
        "firsts AS (SELECT u, ov, seg, c1.t AS t, arg_min(id, c1) AS id FROM cand GROUP BY u, ov, seg, c1.t)",
        # Materialized: DuckDB refuses an ASOF join inlined into a recursive CTE (it plans one on large inputs).
        "nxt AS MATERIALIZED (SELECT c.id, f.id AS next_id FROM cand c "
        "ASOF LEFT JOIN firsts f ON c.u = f.u AND c.ov = f.ov AND c.seg = f.seg AND f.t > c.exit_t)",
        "chain(id) AS (SELECT arg_min(id, c1) FROM cand GROUP BY u, ov, seg UNION ALL "
        "SELECT n.next_id FROM chain c JOIN nxt n ON n.id = c.id WHERE n.next_id IS NOT NULL)",
        "chosen AS (SELECT cand.* FROM cand JOIN chain USING (id))",
    ]


def funnel_figures(conn: duckdb.DuckDBPyConnection, spec: FunnelSpec) -> list[StepFigures]:
    sql, params = _scan_sql(spec)
    return [
        StepFigures(
            bucket=b,
            segment=OVERALL if ov else str(seg),
            counts=tuple(int(c) for c in counts),
            avg_ms=tuple(avg),
            avg_from_start_ms=tuple(avg_start),
        )
        for b, ov, seg, counts, avg, avg_start in conn.execute(sql, params).fetchall()
    ]


def step_property_names(conn: duckdb.DuckDBPyConnection, spec: StepPropertyNamesSpec) -> list[tuple[str, int]]:
    rel = scoped_events(spec.project_id, spec.start_ms, spec.end_ms, events=[spec.step.event])
    where = f"WHERE {spec.step.where_sql}" if spec.step.where_sql else ""
    rows = conn.execute(
        f"""SELECT k, count(*) AS n FROM (SELECT unnest(json_keys(e.properties)) AS k FROM ({rel.sql}) e {where})
            GROUP BY k ORDER BY n DESC, k LIMIT $limit""",
        {**rel.params, "limit": spec.limit},
    ).fetchall()
    return [(str(k), int(n)) for k, n in rows]
