"""Profile queries on DuckDB: `/engage` pages and live cohort counts.

A query first finds the ordered list of matching distinct ids (one column, kept as an Arrow array: ~16
bytes a profile), then reads only the page's profiles. The list is kept per session id for a while so
that later pages (fetched one by one or concurrently) slice the same snapshot instead of sorting again;
when it is gone (expired, evicted, restarted) it is recomputed, and the order by distinct id keeps the
pages consistent as long as the data did not change in between.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import duckdb
import pyarrow as pa

from mixhouse.domain.query.engage import BehaviorCount, CohortCountSpec, EngagePage, EngageSpec, MembershipRule
from mixhouse.engine.common.snapshots import IdListCache as _Snapshots
from mixhouse.engine.duckdb.expressions import Scope, compile_filter
from mixhouse.engine.duckdb.lookups import lookup_joins
from mixhouse.engine.duckdb.printer import quote
from mixhouse.engine.duckdb.relations import Relation, scoped_events

# A profile row `p` as expressions read it (profile datetimes are UTC); with behaviours, `behaviors["b"]`
# reads the counts in p.behaviors. An event of a behaviour is a row `e`.
PROFILE_SCOPE = Scope.profiles("p", timezone="UTC")
BEHAVIOR_SCOPE = dataclasses.replace(PROFILE_SCOPE, behaviors_sql="p.behaviors")
EVENT_SCOPE = Scope.events("e")

_SNAPSHOTS = _Snapshots()


def forget_snapshots(project_id: int) -> None:
    _SNAPSHOTS.forget(project_id)


def profiles_relation(conn: duckdb.DuckDBPyConnection, project_id: int, group_key: str | None = None) -> Relation:
    """Columns distinct_id, properties: user profiles (keyed by canonical id) or one group key's profiles."""
    params: dict[str, Any] = {"pp_project": project_id}
    if group_key is not None:
        params["pp_group"] = group_key
        sql = (
            "SELECT group_id AS distinct_id, properties FROM group_profiles"
            " WHERE project_id = $pp_project AND group_key = $pp_group"
        )
    else:
        # Profiles are stored under the canonical id already: Original ID Merge folds them into the
        # cluster's profile as merges happen; Simplified never carries a device profile over (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-simplified).
        sql = "SELECT distinct_id, properties FROM profiles WHERE project_id = $pp_project"
    return Relation(sql, params)


def members_relation(conn: duckdb.DuckDBPyConnection, project_id: int, rule: MembershipRule, prefix: str) -> Relation:
    """Columns distinct_id, properties (JSON, '{}' without a profile), has_profile."""
    prof = profiles_relation(conn, project_id)
    params = dict(prof.params)
    if rule.event is None:
        sql = f"SELECT distinct_id, properties, TRUE AS has_profile FROM ({prof.sql}) x"
    else:
        done = scoped_events(project_id, rule.start_ms, rule.end_ms, events=[rule.event], prefix=prefix)
        params.update(done.params)
        params[f"{prefix}_min"] = rule.min_count
        sql = f"""
            SELECT a.distinct_id, coalesce(pr.properties, '{{}}'::JSON) AS properties,
                   pr.distinct_id IS NOT NULL AS has_profile
            FROM (SELECT distinct_id FROM ({done.sql}) GROUP BY distinct_id HAVING count(*) >= ${prefix}_min) a
            LEFT JOIN ({prof.sql}) pr ON pr.distinct_id = a.distinct_id
        """
    if rule.filter is not None:
        sql = f"SELECT * FROM ({sql}) p WHERE {compile_filter(rule.filter, PROFILE_SCOPE)}"
    return Relation(sql, params)


def _selected_sql(b: BehaviorCount) -> str:
    """SQL boolean over an event `e`: it matches one of the behaviour's selectors."""
    alternatives = []
    for sel in b.selectors:
        clause = f"e.event = {quote(sel.event)}"
        if sel.where is not None:
            clause += " AND " + compile_filter(sel.where, EVENT_SCOPE)
        alternatives.append(f"({clause})")
    return " OR ".join(alternatives)


def _with_behaviors(spec: EngageSpec, base: Relation) -> Relation:
    """The base rows with a column `behaviors`: JSON {name: count} of every behaviour (0 for none)."""
    if not spec.behaviors:
        return base
    params = dict(base.params)
    joins, pairs = [], []
    for i, b in enumerate(spec.behaviors):
        ev = scoped_events(spec.project_id, b.start_ms, b.end_ms, prefix=f"b{i}")
        params.update(ev.params)
        params[f"b{i}_key"] = b.name
        joins.append(
            f"LEFT JOIN (SELECT e.distinct_id, count(*) AS n FROM ({ev.sql}) e WHERE {_selected_sql(b)}"
            f" GROUP BY e.distinct_id) b{i} ON b{i}.distinct_id = p.distinct_id"
        )
        pairs.append(f"$b{i}_key, coalesce(b{i}.n, 0)")
    counts = f"json_object({', '.join(pairs)})"
    return Relation(f"SELECT p.*, {counts} AS behaviors FROM ({base.sql}) p {' '.join(joins)}", params)


def _matching_ids(conn: duckdb.DuckDBPyConnection, spec: EngageSpec) -> pa.Array:
    if spec.cohort is not None:
        base = members_relation(conn, spec.project_id, spec.cohort, "c")
    else:
        prof = profiles_relation(conn, spec.project_id, spec.group_key)
        base = Relation(f"SELECT distinct_id, properties, TRUE AS has_profile FROM ({prof.sql}) x", prof.params)
    rel = _with_behaviors(spec, base)
    params = dict(rel.params)
    filters = ["TRUE"]
    if not spec.include_all_users:
        filters.append("p.has_profile")
    if spec.distinct_ids is not None:
        params["q_ids"] = list(spec.distinct_ids)
        if spec.group_key is None:
            # The ids asked for may be any id of a cluster: compare their canonical ids.
            params["q_project"] = spec.project_id
            filters.append(
                "p.distinct_id IN (SELECT coalesce(m.canonical_id, i.id) FROM (SELECT unnest($q_ids) AS id) i"
                " LEFT JOIN identity_map m ON m.project_id = $q_project AND m.distinct_id = i.id)"
            )
        else:
            filters.append("list_contains($q_ids, p.distinct_id)")
    columns = "distinct_id, has_profile, properties"
    joins = ""
    if spec.where is not None:
        # behaviors["name"] reads the counts beside the profile; lookup reads join their tables.
        scope = dataclasses.replace(BEHAVIOR_SCOPE if spec.behaviors else PROFILE_SCOPE, lookups=True)
        filters.append(compile_filter(spec.where, scope))
        joins = lookup_joins(scope, spec.where)
        if spec.behaviors:
            columns += ", behaviors"
    inner = f"SELECT {columns} FROM ({rel.sql}) w"
    sql = f"SELECT p.distinct_id FROM ({inner}) p {joins} WHERE {' AND '.join(filters)} ORDER BY p.distinct_id"
    table: pa.Table = conn.sql(sql, params=params).to_arrow_table()
    return table.column(0).combine_chunks()


def engage_page(conn: duckdb.DuckDBPyConnection, spec: EngageSpec) -> EngagePage:
    identity = dataclasses.replace(spec, page=0)
    key = (spec.project_id, spec.session_id)
    ids = _SNAPSHOTS.get(key, identity)
    if ids is None:
        ids = _matching_ids(conn, spec)
        if len(ids) > spec.page_size:  # only a query with further pages is worth keeping
            _SNAPSHOTS.put(key, identity, ids)
    start = spec.page * spec.page_size
    page_ids: list[str] = ids.slice(start, spec.page_size).to_pylist() if start < len(ids) else []
    if not page_ids:
        return EngagePage(len(ids), [])
    prof = profiles_relation(conn, spec.project_id, spec.group_key)
    # The page's ids are consecutive in distinct-id order: the range lets DuckDB skip most of the table.
    rows = conn.execute(
        f"SELECT distinct_id, CAST(properties AS VARCHAR) FROM ({prof.sql}) x"
        " WHERE distinct_id BETWEEN $page_lo AND $page_hi AND list_contains($page_ids, distinct_id)",
        {**prof.params, "page_ids": page_ids, "page_lo": page_ids[0], "page_hi": page_ids[-1]},
    ).fetchall()
    found = dict(rows)
    # Cohort members without a profile (include_all_users) come back with no properties.
    return EngagePage(len(ids), [(d, found.get(d, "{}")) for d in page_ids])


def cohort_counts(conn: duckdb.DuckDBPyConnection, spec: CohortCountSpec) -> list[int]:
    counts = []
    for rule in spec.rules:
        rel = members_relation(conn, spec.project_id, rule, "c")
        rows = conn.execute(f"SELECT count(*) FROM ({rel.sql}) m", rel.params).fetchall()
        counts.append(int(rows[0][0]))
    return counts
