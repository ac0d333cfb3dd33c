"""Event discovery on ClickHouse: names, today's top events, property names and values, profile properties,
as the embedded engine answers them (mixhouse/engine/duckdb/queries/events.py)."""

from __future__ import annotations

from typing import Any

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
from mixhouse.engine.clickhouse.expressions import compile_filter, compile_segment_key
from mixhouse.engine.clickhouse.relations import profiles_sql, scoped_events
from mixhouse.engine.clickhouse.scope import Scope
from mixhouse.engine.clickhouse.store import Store

_COUNTS = {
    CountType.GENERAL: "count()",
    CountType.UNIQUE: "uniqExact(user_key)",
    CountType.AVERAGE: "count() / uniqExact(user_key)",
}


def event_names(store: Store, spec: EventNamesSpec) -> list[str]:
    rel = scoped_events(store.db, spec.project_id, spec.start_ms, spec.end_ms, resolve_identity=False, dedup=False)
    rows = store.rows(
        f"SELECT event FROM ({rel.sql}) GROUP BY event ORDER BY count() DESC, event LIMIT {{limit:UInt64}}",
        {**rel.params, "limit": spec.limit},
    )
    return [str(r["event"]) for r in rows]


def event_top(store: Store, spec: EventTopSpec) -> list[EventTopRow]:
    rel = scoped_events(store.db, spec.project_id, spec.yesterday_start_ms, spec.today_end_ms)
    aggregate = _COUNTS[spec.count_type]
    sql = f"""
        SELECT event,
               toFloat64({aggregate.replace("count()", "countIf(time_ms >= {today:Int64})").replace("uniqExact(user_key)", "uniqExactIf(user_key, time_ms >= {today:Int64})")}) AS t,
               toFloat64({aggregate.replace("count()", "countIf(time_ms < {today:Int64})").replace("uniqExact(user_key)", "uniqExactIf(user_key, time_ms < {today:Int64})")}) AS y
        FROM ({rel.sql})
        GROUP BY event HAVING countIf(time_ms >= {{today:Int64}}) > 0
        ORDER BY t DESC, event LIMIT {{limit:UInt64}}
    """
    params: dict[str, Any] = {**rel.params, "today": spec.today_start_ms, "limit": spec.limit}
    rows = store.rows(sql, params)
    return [EventTopRow(str(r["event"]), float(r["t"]), 0.0 if r["y"] != r["y"] else float(r["y"])) for r in rows]


def property_names(store: Store, spec: PropertyNamesSpec) -> list[tuple[str, int]]:
    rel = scoped_events(
        store.db, spec.project_id, spec.start_ms, spec.end_ms, events=spec.events, resolve_identity=False, dedup=False
    )
    sql = f"""
        SELECT name, count() AS n FROM (SELECT arrayJoin(JSONExtractKeys(properties)) AS name FROM ({rel.sql}))
        WHERE NOT has({{hidden:Array(String)}}, name)
        GROUP BY name ORDER BY n DESC, name LIMIT {{limit:UInt64}}
    """
    rows = store.rows(sql, {**rel.params, "limit": spec.limit, "hidden": list(spec.hidden)})
    return [(str(r["name"]), int(r["n"])) for r in rows]


def property_values(store: Store, spec: PropertyValuesSpec) -> list[str]:
    rel = scoped_events(
        store.db, spec.project_id, spec.start_ms, spec.end_ms, events=spec.events, resolve_identity=False, dedup=False
    )
    key = compile_segment_key(spec.key, Scope.events("e"))
    sql = f"""
        SELECT v FROM (SELECT arrayJoin({key}) AS v FROM ({rel.sql}) AS e)
        GROUP BY v ORDER BY count() DESC, v LIMIT {{limit:UInt64}}
    """
    return [str(r["v"]) for r in store.rows(sql, {**rel.params, "limit": spec.limit})]


# JSON kinds as Mixpanel's property types; a string shaped like an ISO date-time is a datetime.
_TYPE = """
    multiIf(
        startsWith(raw, '"'),
            if(match(JSONExtractString(raw), '^\\\\d{4}-\\\\d{2}-\\\\d{2}T\\\\d{2}:\\\\d{2}:\\\\d{2}'), 'datetime', 'string'),
        raw IN ('true', 'false'), 'boolean',
        startsWith(raw, '['), 'list',
        startsWith(raw, '{'), 'object',
        raw = 'null', NULL,
        'number')
"""


def profile_properties(store: Store, spec: ProfilePropertiesSpec) -> list[ProfilePropertyRow]:
    where = compile_filter(spec.where, Scope.profiles("p")) if spec.where is not None else "1"
    sql = f"""
        SELECT kv.1 AS name, count() AS n, coalesce(topK(1)({_TYPE.replace("raw", "kv.2")})[1], 'string') AS kind
        FROM (SELECT p.properties AS properties FROM {profiles_sql(store.db, "project")} AS p WHERE ({where}))
        ARRAY JOIN JSONExtractKeysAndValuesRaw(properties) AS kv
        GROUP BY name ORDER BY n DESC, name LIMIT {{limit:UInt64}}
    """
    rows = store.rows(sql, {"project": spec.project_id, "limit": spec.limit})
    return [ProfilePropertyRow(str(r["name"]), int(r["n"]), str(r["kind"])) for r in rows]
