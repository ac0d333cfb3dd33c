"""The event relation every analysis reads on ClickHouse: one project, a time range, identities resolved
to their canonical id, and `$insert_id` duplicates collapsed to the most recently ingested copy
(https://developer.mixpanel.com/reference/event-deduplication), as on the embedded engine. Parameters are
ClickHouse server-side parameters (`{name:Type}`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mixhouse.engine.clickhouse.printer import quote


@dataclass
class Relation:
    """SQL of a subquery and its named parameters."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def identity_map_sql(db: str, project_param: str) -> str:
    """The project's live identity map rows (latest version of each id)."""
    return (
        f"(SELECT distinct_id, canonical_id, canonical_key FROM {db}.identity_map FINAL"
        f" WHERE project_id = {{{project_param}:Int64}} AND deleted = 0)"
    )


def scoped_events(
    db: str,
    project_id: int,
    start_ms: int | None,
    end_ms: int | None,
    *,
    events: Sequence[str] | None = None,
    resolve_identity: bool = True,
    dedup: bool = True,
    prefix: str = "r",
) -> Relation:
    """Columns: seq, time_ms, event, distinct_id (resolved), original_distinct_id, insert_id, properties,
    user_key (the resolved id's key)."""
    p = f"{prefix}_project"
    params: dict[str, Any] = {p: project_id}
    filters = [f"e.project_id = {{{p}:Int64}}"]
    if start_ms is not None:
        filters.append(f"e.time_ms >= {{{prefix}_start:Int64}}")
        params[f"{prefix}_start"] = start_ms
    if end_ms is not None:
        filters.append(f"e.time_ms < {{{prefix}_end:Int64}}")
        params[f"{prefix}_end"] = end_ms
    if events is not None:
        filters.append(f"e.event IN ({', '.join(quote(name) for name in events)})" if events else "0")
    distinct, key, join = "e.distinct_id", "e.user_key", ""
    if resolve_identity:
        # A LEFT JOIN fills a missing right row with defaults ('' and 0), not NULL.
        distinct = "if(m.canonical_id = '', e.distinct_id, m.canonical_id)"
        key = "if(m.canonical_id = '', e.user_key, m.canonical_key)"
        join = f"LEFT JOIN {identity_map_sql(db, p)} AS m ON m.distinct_id = e.distinct_id"
    if dedup:  # older copies of a dedup key are listed by the writer (engine.py)
        filters.append(
            f"e.seq NOT IN (SELECT s.seq FROM {db}.superseded_events AS s WHERE s.project_id = {{{p}:Int64}})"
        )
    sql = f"""
        SELECT e.seq AS seq, e.time_ms AS time_ms, e.event AS event, {distinct} AS distinct_id,
               e.distinct_id AS original_distinct_id, e.insert_id AS insert_id, e.properties AS properties,
               {key} AS user_key
        FROM {db}.events AS e {join}
        WHERE {" AND ".join(filters)}
    """
    return Relation(sql, params)


def profiles_sql(db: str, project_param: str = "r_project") -> str:
    """The project's live user profiles (latest version of each id)."""
    return (
        f"(SELECT distinct_id, properties, updated_ms FROM {db}.profiles FINAL"
        f" WHERE project_id = {{{project_param}:Int64}} AND deleted = 0)"
    )
