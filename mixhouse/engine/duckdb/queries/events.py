"""Event discovery on DuckDB: names, today's top events, property names and values, profile properties."""

from __future__ import annotations

from typing import Any

import duckdb

from mixhouse.domain.query.events import (
    EventNamesSpec,
    EventTopRow,
    EventTopSpec,
    ProfilePropertiesSpec,
    ProfilePropertyRow,
    PropertyNamesSpec,
    PropertyValuesSpec,
)
from mixhouse.domain.query.params import CountType
from mixhouse.engine.duckdb import property_counts
from mixhouse.engine.duckdb.expressions import compile_filter, compile_segment_key
from mixhouse.engine.duckdb.property_columns import ready_slots
from mixhouse.engine.duckdb.relations import scoped_events, user_events
from mixhouse.engine.duckdb.scope import Scope

_COUNTS = {
    CountType.GENERAL: "count(*)",
    CountType.UNIQUE: "count(DISTINCT user_key)",
    CountType.AVERAGE: "count(*) / count(DISTINCT user_key)",
}


def event_names(conn: duckdb.DuckDBPyConnection, spec: EventNamesSpec) -> list[str]:
    rel = scoped_events(spec.project_id, spec.start_ms, spec.end_ms, resolve_identity=False, dedup=False)
    rows = conn.execute(
        f"SELECT event FROM ({rel.sql}) GROUP BY event ORDER BY count(*) DESC, event LIMIT $limit",
        {**rel.params, "limit": spec.limit},
    ).fetchall()
    return [r[0] for r in rows]


def event_top(conn: duckdb.DuckDBPyConnection, spec: EventTopSpec) -> list[EventTopRow]:
    rel = user_events(conn, spec.project_id, spec.yesterday_start_ms, spec.today_end_ms)
    aggregate = _COUNTS[spec.count_type]
    sql = f"""
        WITH days AS (
            SELECT event, time_ms >= $today AS is_today, CAST({aggregate} AS DOUBLE) AS v
            FROM ({rel.sql}) GROUP BY event, is_today
        )
        SELECT t.event, t.v, coalesce(y.v, 0)
        FROM days t LEFT JOIN days y ON y.event = t.event AND NOT y.is_today
        WHERE t.is_today
        ORDER BY t.v DESC, t.event
        LIMIT $limit
    """
    params: dict[str, Any] = {**rel.params, "today": spec.today_start_ms, "limit": spec.limit}
    rows = conn.execute(sql, params).fetchall()[: spec.limit]  # DuckDB 2.0.0 can drop a LIMIT (see export_lines)
    return [EventTopRow(r[0], float(r[1]), float(r[2])) for r in rows]


# Discovery counts stored events as /events/names does: duplicates included, no identity join (both
# cost more than the counting itself and do not change which names and values exist).


def property_names(conn: duckdb.DuckDBPyConnection, spec: PropertyNamesSpec) -> list[tuple[str, int]]:
    # Counted by the writer per hour and event (property_counts.py): a few thousand rows, not every event.
    return property_counts.property_names(conn, spec)


def property_values(conn: duckdb.DuckDBPyConnection, spec: PropertyValuesSpec) -> list[str]:
    rel = scoped_events(
        spec.project_id, spec.start_ms, spec.end_ms, events=spec.events, resolve_identity=False, dedup=False
    )
    key = compile_segment_key(spec.key, Scope.events("e").with_slots(ready_slots(conn, spec.project_id)))
    sql = f"""
        SELECT v FROM (SELECT unnest({key}) AS v FROM ({rel.sql}) e)
        GROUP BY v ORDER BY count(*) DESC, v LIMIT $limit
    """
    return [r[0] for r in conn.execute(sql, {**rel.params, "limit": spec.limit}).fetchall()]


# JSON kinds as Mixpanel's property types; a string shaped like an ISO date-time is a datetime.
_TYPE = """
    CASE j.type
        WHEN 'VARCHAR' THEN CASE WHEN regexp_matches(j.value ->> '$', '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}')
                                 THEN 'datetime' ELSE 'string' END
        WHEN 'BOOLEAN' THEN 'boolean'
        WHEN 'ARRAY' THEN 'list'
        WHEN 'OBJECT' THEN 'object'
        WHEN 'NULL' THEN NULL
        ELSE 'number'
    END
"""


def profile_properties(conn: duckdb.DuckDBPyConnection, spec: ProfilePropertiesSpec) -> list[ProfilePropertyRow]:
    where = compile_filter(spec.where, Scope.profiles("p")) if spec.where is not None else "TRUE"
    sql = f"""
        SELECT j.key AS name, count(*) AS n, coalesce(mode({_TYPE}), 'string') AS kind
        FROM (SELECT p.properties FROM profiles p WHERE p.project_id = $project AND ({where})) p,
             json_each(p.properties) j
        GROUP BY j.key ORDER BY n DESC, name LIMIT $limit
    """
    rows = conn.execute(sql, {"project": spec.project_id, "limit": spec.limit}).fetchall()
    return [ProfilePropertyRow(r[0], int(r[1]), r[2]) for r in rows]
