"""The activity stream on DuckDB: each event rendered to its JSON text in SQL."""

from __future__ import annotations

import duckdb

from mixhouse.domain.query.stream import StreamSpec
from mixhouse.engine.duckdb.relations import scoped_events


def stream_events(conn: duckdb.DuckDBPyConnection, spec: StreamSpec) -> list[str]:
    rel = scoped_events(spec.project_id, spec.start_ms, spec.end_ms)
    sql = f"""
        WITH wanted AS (
            SELECT DISTINCT coalesce(m.canonical_id, i.id) AS id FROM (SELECT unnest($ids) AS id) i
            LEFT JOIN identity_map m ON m.project_id = $r_project AND m.distinct_id = i.id
        )
        SELECT '{{"event":' || to_json(r.event) || ',"properties":{{"time":' || CAST(r.time_ms // 1000 AS VARCHAR)
               || ',"$distinct_id":' || to_json(r.distinct_id)
               || CASE WHEN CAST(r.properties AS VARCHAR) = '{{}}' THEN '}}'
                       ELSE ',' || substr(CAST(r.properties AS VARCHAR), 2) END
               || '}}'
        FROM ({rel.sql}) r
        WHERE r.distinct_id IN (SELECT id FROM wanted)
        ORDER BY r.time_ms, r.seq
        LIMIT $limit
    """
    rows = conn.execute(sql, {**rel.params, "ids": list(spec.distinct_ids), "limit": spec.limit}).fetchall()
    return [r[0] for r in rows[: spec.limit]]  # DuckDB 2.0.0 can drop a large LIMIT (see export_lines)
