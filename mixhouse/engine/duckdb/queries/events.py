"""Event discovery on DuckDB."""

from __future__ import annotations

import duckdb

from mixhouse.domain.query.events import EventNamesSpec
from mixhouse.engine.duckdb.relations import scoped_events


def event_names(conn: duckdb.DuckDBPyConnection, spec: EventNamesSpec) -> list[str]:
    rel = scoped_events(spec.project_id, spec.start_ms, spec.end_ms, resolve_identity=False, dedup=False)
    rows = conn.execute(
        f"SELECT event FROM ({rel.sql}) GROUP BY event ORDER BY count(*) DESC, event LIMIT $limit",
        {**rel.params, "limit": spec.limit},
    ).fetchall()
    return [r[0] for r in rows]
