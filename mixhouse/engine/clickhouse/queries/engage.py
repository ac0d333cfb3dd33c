"""Profile queries on ClickHouse: `/engage` pages and live cohort counts, as the embedded engine answers
them (mixhouse/engine/duckdb/queries/engage.py): the ordered list of matching ids first, kept per session
id for later pages, then only the page's profiles.

The id lists are kept in ClickHouse, not in the process, so that every API process sharing the store
answers a later page from the same list, whichever process made page 0: a list longer than one page is
written to `engage_lists` under a new list id, then one row of `engage_sessions` names it (with the
query's key and the total), so a list is found only once it is complete. Two processes answering page 0
of one session at once write two lists; every reader takes the earliest session row, so all later pages
read one list. A GDPR deletion drops the project's session rows (later pages recompute, as after
expiry). Rows expire after a day (the tables' TTL); a later page of an expired or unknown session
recomputes the list at the session's snapshot time (docs/scale-out.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from typing import Any

import orjson
import pyarrow as pa

from mixhouse.domain.query.engage import BehaviorCount, CohortCountSpec, EngagePage, EngageSpec, MembershipRule
from mixhouse.engine.clickhouse.expressions import Scope, compile_filter
from mixhouse.engine.clickhouse.printer import quote
from mixhouse.engine.clickhouse.relations import Relation, identity_map_sql, scoped_events
from mixhouse.engine.clickhouse.store import Store

PROFILE_SCOPE = Scope.profiles("p", timezone="UTC")
BEHAVIOR_SCOPE = dataclasses.replace(PROFILE_SCOPE, behaviors_sql="p.behaviors")
EVENT_SCOPE = Scope.events("e")


def forget_snapshots(store: Store, project_id: int) -> None:
    """Drop the project's paging sessions (its users changed: a deletion); later pages recompute."""
    store.driver.command(f"DELETE FROM {store.db}.engage_sessions WHERE project_id = {{p:Int64}}", {"p": project_id})


def profiles_relation(store: Store, project_id: int, group_key: str | None = None) -> Relation:
    """Columns distinct_id, properties: live user profiles (keyed by canonical id) or one group key's."""
    params: dict[str, Any] = {"pp_project": project_id}
    if group_key is not None:
        params["pp_group"] = group_key
        sql = (
            f"SELECT group_id AS distinct_id, properties FROM {store.db}.group_profiles FINAL"
            " WHERE project_id = {pp_project:Int64} AND group_key = {pp_group:String} AND deleted = 0"
        )
    else:
        sql = (
            f"SELECT distinct_id, properties FROM {store.db}.profiles FINAL"
            " WHERE project_id = {pp_project:Int64} AND deleted = 0"
        )
    return Relation(sql, params)


def members_relation(store: Store, project_id: int, rule: MembershipRule, prefix: str) -> Relation:
    """Columns distinct_id, properties ('{}' without a profile), has_profile."""
    prof = profiles_relation(store, project_id)
    params = dict(prof.params)
    if rule.event is None:
        sql = f"SELECT distinct_id, properties, toUInt8(1) AS has_profile FROM ({prof.sql})"
    else:
        done = scoped_events(store.db, project_id, rule.start_ms, rule.end_ms, events=[rule.event], prefix=prefix)
        params.update(done.params)
        params[f"{prefix}_min"] = rule.min_count
        sql = f"""
            SELECT a.distinct_id AS distinct_id, if(pr.distinct_id = '', '{{}}', pr.properties) AS properties,
                   toUInt8(pr.distinct_id != '') AS has_profile
            FROM (SELECT distinct_id FROM ({done.sql}) GROUP BY distinct_id
                  HAVING count() >= {{{prefix}_min:Int64}}) AS a
            LEFT JOIN ({prof.sql}) AS pr ON pr.distinct_id = a.distinct_id
        """
    if rule.filter is not None:
        sql = f"SELECT * FROM ({sql}) AS p WHERE {compile_filter(rule.filter, PROFILE_SCOPE)}"
    return Relation(sql, params)


def _selected_sql(b: BehaviorCount) -> str:
    alternatives = []
    for sel in b.selectors:
        clause = f"e.event = {quote(sel.event)}"
        if sel.where is not None:
            clause += " AND " + compile_filter(sel.where, EVENT_SCOPE)
        alternatives.append(f"({clause})")
    return " OR ".join(alternatives)


def _with_behaviors(store: Store, spec: EngageSpec, base: Relation) -> Relation:
    """The base rows with a column `behaviors`: JSON {name: count} of every behaviour (0 for none)."""
    if not spec.behaviors:
        return base
    params = dict(base.params)
    joins, pairs = [], []
    for i, b in enumerate(spec.behaviors):
        ev = scoped_events(store.db, spec.project_id, b.start_ms, b.end_ms, prefix=f"b{i}")
        params.update(ev.params)
        joins.append(
            f"LEFT JOIN (SELECT e.distinct_id AS distinct_id, count() AS n FROM ({ev.sql}) AS e WHERE {_selected_sql(b)}"
            f" GROUP BY e.distinct_id) AS b{i} ON b{i}.distinct_id = p.distinct_id"
        )
        pairs.append(f"{quote(json.dumps(b.name, ensure_ascii=False))}, ':', toString(b{i}.n)")
    counts = "concat('{', " + ", ',', ".join(pairs) + ", '}')"
    sql = f"SELECT p.distinct_id AS distinct_id, p.properties AS properties, p.has_profile AS has_profile, {counts} AS behaviors FROM ({base.sql}) AS p {' '.join(joins)}"
    return Relation(sql, params)


def _matching_sql(store: Store, spec: EngageSpec) -> tuple[str, dict[str, Any]]:
    """A query of one column, distinct_id: the ids matching the spec (not yet ordered)."""
    if spec.cohort is not None:
        base = members_relation(store, spec.project_id, spec.cohort, "c")
    else:
        prof = profiles_relation(store, spec.project_id, spec.group_key)
        base = Relation(f"SELECT distinct_id, properties, toUInt8(1) AS has_profile FROM ({prof.sql})", prof.params)
    rel = _with_behaviors(store, spec, base)
    params = dict(rel.params)
    filters = ["1"]
    if not spec.include_all_users:
        filters.append("p.has_profile = 1")
    if spec.distinct_ids is not None:
        params["q_ids"] = list(spec.distinct_ids)
        if spec.group_key is None:
            params["q_project"] = spec.project_id
            filters.append(
                "p.distinct_id IN (SELECT if(m.canonical_id = '', i.id, m.canonical_id)"
                " FROM (SELECT arrayJoin({q_ids:Array(String)}) AS id) AS i"
                f" LEFT JOIN {identity_map_sql(store.db, 'q_project')} AS m ON m.distinct_id = i.id)"
            )
        else:
            filters.append("has({q_ids:Array(String)}, p.distinct_id)")
    if spec.where is not None:
        filters.append(compile_filter(spec.where, BEHAVIOR_SCOPE if spec.behaviors else PROFILE_SCOPE))
    return f"SELECT p.distinct_id AS distinct_id FROM ({rel.sql}) AS p WHERE {' AND '.join(filters)}", params


def _matching_ids(store: Store, spec: EngageSpec) -> pa.Array:
    sql, params = _matching_sql(store, spec)
    table = store.driver.arrow(f"{sql} ORDER BY distinct_id", params)
    return table.column(0).combine_chunks() if table.num_rows else pa.array([], pa.string())


def query_key(spec: EngageSpec) -> str:
    """What identifies a paging session's query in every process: the spec of page 0 (its repr is made
    of dataclasses, strings and numbers only, so the same query gives the same key in any process)."""
    identity = dataclasses.replace(spec, page=0, session_id="")
    return hashlib.sha256(repr(identity).encode()).hexdigest()


def _stored_list(store: Store, spec: EngageSpec, key: str) -> tuple[str, int] | None:
    rows = store.rows(
        f"""SELECT list_id, total FROM {store.db}.engage_sessions
            WHERE project_id = {{p:Int64}} AND session_id = {{s:String}} AND query_key = {{k:String}}
            ORDER BY created_ms, list_id LIMIT 1""",
        {"p": spec.project_id, "s": spec.session_id, "k": key},
    )
    return (str(rows[0]["list_id"]), int(rows[0]["total"])) if rows else None


def _store_list(store: Store, spec: EngageSpec, key: str, ids: pa.Array) -> None:
    """Write the whole list, then the session row that makes it visible."""
    list_id, now_ms = uuid.uuid4().hex, int(time.time() * 1000)
    store.driver.command(
        f"""INSERT INTO {store.db}.engage_lists (project_id, session_id, list_id, distinct_id, created_ms)
            SELECT {{p:Int64}}, {{s:String}}, {{l:String}}, arrayJoin(JSONExtract({{ids:String}}, 'Array(String)')),
                   {{now:Int64}}""",
        {
            "p": spec.project_id,
            "s": spec.session_id,
            "l": list_id,
            "ids": orjson.dumps(ids.to_pylist()).decode(),
            "now": now_ms,
        },
    )
    store.insert(
        "engage_sessions",
        ("project_id", "session_id", "query_key", "list_id", "total", "created_ms"),
        [(spec.project_id, spec.session_id, key, list_id, len(ids), now_ms)],
        token=False,
    )


def _page_of_list(store: Store, spec: EngageSpec, list_id: str, start: int) -> list[str]:
    rows = store.rows(
        f"""SELECT distinct_id FROM {store.db}.engage_lists
            WHERE project_id = {{p:Int64}} AND session_id = {{s:String}} AND list_id = {{l:String}}
            ORDER BY distinct_id LIMIT {{n:UInt64}} OFFSET {{o:UInt64}}""",
        {"p": spec.project_id, "s": spec.session_id, "l": list_id, "n": spec.page_size, "o": start},
    )
    return [str(r["distinct_id"]) for r in rows]


def engage_page(store: Store, spec: EngageSpec) -> EngagePage:
    key = query_key(spec)
    start = spec.page * spec.page_size
    stored = _stored_list(store, spec, key)
    if stored is not None:
        list_id, total = stored
        page_ids = _page_of_list(store, spec, list_id, start) if start < total else []
    else:
        ids = _matching_ids(store, spec)
        total = len(ids)
        if total > spec.page_size:
            _store_list(store, spec, key, ids)
        page_ids = ids.slice(start, spec.page_size).to_pylist() if start < total else []
    if not page_ids:
        return EngagePage(total, [])
    prof = profiles_relation(store, spec.project_id, spec.group_key)
    rows = store.rows(
        f"SELECT distinct_id, properties FROM ({prof.sql}) WHERE has({{page_ids:Array(String)}}, distinct_id)",
        {**prof.params, "page_ids": page_ids},
    )
    found = {str(r["distinct_id"]): str(r["properties"]) for r in rows}
    return EngagePage(total, [(d, found.get(d, "{}")) for d in page_ids])


def cohort_counts(store: Store, spec: CohortCountSpec) -> list[int]:
    counts = []
    for rule in spec.rules:
        rel = members_relation(store, spec.project_id, rule, "c")
        rows = store.rows(f"SELECT count() AS n FROM ({rel.sql})", rel.params)
        counts.append(int(rows[0]["n"]))
    return counts
