"""The event relation every analysis reads: one project, a time range, identities resolved to their
canonical id, and `$insert_id` duplicates collapsed to the most recently ingested copy (
https://developer.mixpanel.com/reference/event-deduplication; identities resolved as Mixpanel's reports do). Raw export reads the table directly instead: it shows events as they were sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from mixhouse.engine.duckdb import property_columns
from mixhouse.engine.duckdb.printer import quote
from mixhouse.engine.duckdb.schema import user_key_sql


@dataclass
class Relation:
    """SQL of a subquery and its named parameters (DuckDB `$name` style)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def scoped_events(
    project_id: int,
    start_ms: int | None,
    end_ms: int | None,
    *,
    events: Sequence[str] | None = None,
    resolve_identity: bool = True,
    dedup: bool = True,
    keyed: bool = False,
    prefix: str = "r",
) -> Relation:
    """Columns: seq, time_ms, event, distinct_id (resolved), original_distinct_id, insert_id, properties,
    user_key (the resolved id's key, see schema.user_key_sql), and the property slot columns (read through
    a scope `with_slots`, see property_columns.py).

    `keyed`: resolve identities with a join on keys instead of on the text ids, so that a scan that reads
    only `user_key` never reads `distinct_id` (per-user kernels). `prefix` keeps parameter names apart
    when several relations meet in one statement."""
    params: dict[str, Any] = {f"{prefix}_project": project_id}
    filters = [f"e.project_id = ${prefix}_project"]
    if start_ms is not None:
        filters.append(f"e.time_ms >= ${prefix}_start")
        params[f"{prefix}_start"] = start_ms
    if end_ms is not None:
        filters.append(f"e.time_ms < ${prefix}_end")
        params[f"{prefix}_end"] = end_ms
    if events is not None:
        # Literals, not a list parameter: DuckDB pushes a constant IN list down into the scan.
        filters.append(f"e.event IN ({', '.join(quote(name) for name in events)})" if events else "FALSE")
    distinct, key, join = "e.distinct_id", "e.user_key", ""
    if resolve_identity and keyed:
        distinct, key = "coalesce(m.canonical_id, e.distinct_id)", "coalesce(m.canonical_key, e.user_key)"
        join = f"""LEFT JOIN (
            SELECT distinct_key, canonical_key, canonical_id FROM identity_map WHERE project_id = ${prefix}_project
        ) m ON m.distinct_key = e.user_key"""
    elif resolve_identity:
        distinct, key = (
            "coalesce(m.canonical_id, e.distinct_id)",
            f"coalesce({user_key_sql('m.canonical_id')}, e.user_key)",
        )
        join = f"LEFT JOIN identity_map m ON m.project_id = ${prefix}_project AND m.distinct_id = e.distinct_id"
    if dedup:  # older copies of a dedup key are listed by the writer (see dedup.py)
        filters.append(f"e.seq NOT IN (SELECT s.seq FROM superseded_events s WHERE s.project_id = ${prefix}_project)")
    sql = f"""
        SELECT e.seq, e.time_ms, e.event, {distinct} AS distinct_id, e.distinct_id AS original_distinct_id,
               e.insert_id, e.properties, {key} AS user_key, {property_columns.select_list()}
        FROM events e {join}
        WHERE {" AND ".join(filters)}
    """
    return Relation(sql, params)


def user_events(
    conn: duckdb.DuckDBPyConnection,
    project_id: int,
    start_ms: int | None,
    end_ms: int | None,
    *,
    events: Sequence[str] | None = None,
    resolve_identity: bool = True,
    prefix: str = "r",
) -> Relation:
    """The relation of analyses that tell users apart: by their integer `user_key`, with the identity
    join only when the caller needs it and the project has merged ids at all."""
    return scoped_events(
        project_id,
        start_ms,
        end_ms,
        events=events,
        resolve_identity=resolve_identity and has_merged_ids(conn, project_id),
        keyed=True,
        prefix=prefix,
    )


def has_merged_ids(conn: duckdb.DuckDBPyConnection, project_id: int) -> bool:
    """Whether any distinct id of the project resolves to another: without, a per-user scan can leave
    the identity join out (it costs even when it matches nothing)."""
    rows = conn.execute("SELECT count(*) FROM (SELECT 1 FROM identity_map WHERE project_id = ? LIMIT 1)", [project_id])
    return bool(rows.fetchall()[0][0])
