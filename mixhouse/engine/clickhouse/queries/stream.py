"""The activity stream on ClickHouse: the events of the asked users' clusters, oldest first, each rendered
to the same JSON text as on the embedded engine (mixhouse/engine/duckdb/queries/stream.py). ClickHouse
returns the columns; the line is put together here with orjson, whose string escaping is DuckDB's
`to_json` (ClickHouse's JSON output escapes `/` by default)."""

from __future__ import annotations

import orjson

from mixhouse.domain.query.stream import StreamSpec
from mixhouse.engine.clickhouse.relations import identity_map_sql, scoped_events
from mixhouse.engine.clickhouse.store import Store


def stream_line(event: str, time_ms: int, distinct_id: str, properties: str) -> str:
    head = '{"event":' + orjson.dumps(event).decode() + ',"properties":{"time":' + str(time_ms // 1000)
    head += ',"$distinct_id":' + orjson.dumps(distinct_id).decode()
    return head + ("}" if properties == "{}" else "," + properties[1:]) + "}"


def stream_events(store: Store, spec: StreamSpec) -> list[str]:
    rel = scoped_events(store.db, spec.project_id, spec.start_ms, spec.end_ms)
    sql = f"""
        WITH wanted AS (
            SELECT DISTINCT if(m.canonical_id = '', i.id, m.canonical_id) AS id
            FROM (SELECT arrayJoin({{ids:Array(String)}}) AS id) AS i
            LEFT JOIN {identity_map_sql(store.db, "r_project")} AS m ON m.distinct_id = i.id
        )
        SELECT r.event AS event, r.time_ms AS time_ms, r.distinct_id AS distinct_id, r.properties AS properties
        FROM ({rel.sql}) AS r
        WHERE r.distinct_id IN (SELECT id FROM wanted)
        ORDER BY r.time_ms, r.seq
        LIMIT {{limit:UInt64}}
    """
    rows = store.rows(sql, {**rel.params, "ids": list(spec.distinct_ids), "limit": spec.limit})
    return [stream_line(r["event"], int(r["time_ms"]), r["distinct_id"], r["properties"]) for r in rows]
