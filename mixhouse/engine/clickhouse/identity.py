"""Keeping `identity_map` up to date without multi-statement transactions (docs/scale-out.md).

The rules are `mixhouse.domain.identity`; this module stores their input (the links) and their output (the
map), recomputing only what a write group can change, as the embedded engine does. ClickHouse has no
transaction across tables, so the writer orders its inserts so that every prefix of a write group is a
state the next attempt repairs: links first (the input, idempotent: a ReplacingMergeTree keyed by the
whole link), then the map rows recomputed from all links of the touched components (idempotent: a new
version of each row), then the events, then profiles. A group that fails part-way is retried whole by the
writer; recomputing a component from its links gives the same map however often it runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from mixhouse.domain import identity as rules
from mixhouse.domain.identity import IdentityLink, LinkKind
from mixhouse.domain.profiles import ProfileUpdate
from mixhouse.engine.clickhouse.store import Store

ProjectLink = tuple[int, IdentityLink]
_MAP_COLUMNS = ("project_id", "distinct_id", "canonical_id", "version", "deleted")


def apply_links(store: Store, links: Sequence[ProjectLink]) -> None:
    devices = [(p, lk) for p, lk in links if lk.kind is LinkKind.DEVICE]
    originals = [(p, lk) for p, lk in links if lk.kind is not LinkKind.DEVICE]
    if devices:
        _apply_device_links(store, devices)
    if originals:
        _apply_original_links(store, originals)


def _map_rows(store: Store, rows: list[tuple[int, str, str, int]]) -> None:
    """(project, distinct id, canonical id, deleted) -> new versions of identity_map rows (the key columns
    are computed by ClickHouse from their defaults, so that they match the events' user_key)."""
    if rows:
        version = store.version()
        store.insert("identity_map", _MAP_COLUMNS, [(*r[:3], version, r[3]) for r in rows])


# -- Simplified ----------------------------------------------------------------------------------


def _apply_device_links(store: Store, links: Sequence[ProjectLink]) -> None:
    best: dict[tuple[int, str], IdentityLink] = {}
    for project_id, link in links:
        key = (project_id, link.other)
        current = best.get(key)
        best[key] = link if current is None else rules.first_link(current, link)
    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, device in best:
        by_project[project_id].append(device)
    for project_id, devices in by_project.items():
        stored = store.rows(
            f"""SELECT device_distinct_id, user_id, time_ms FROM {store.table("identity_devices")} FINAL
                WHERE project_id = {{p:Int64}} AND has({{ids:Array(String)}}, device_distinct_id) AND deleted = 0""",
            {"p": project_id, "ids": devices},
        )
        for row in stored:
            key = (project_id, str(row["device_distinct_id"]))
            existing = IdentityLink(LinkKind.DEVICE, int(row["time_ms"]), str(row["user_id"]), key[1])
            winner = rules.first_link(existing, best[key])
            if winner == existing:
                del best[key]
            else:
                best[key] = winner
    if not best:
        return
    version = store.version()
    store.insert(
        "identity_devices",
        ("project_id", "device_distinct_id", "user_id", "time_ms", "version", "deleted"),
        [(k[0], k[1], lk.primary, lk.time_ms, version, 0) for k, lk in best.items()],
    )
    _map_rows(store, [(k[0], k[1], lk.primary, 0) for k, lk in best.items() if k[1] != lk.primary])


# -- Original ------------------------------------------------------------------------------------


def _component(store: Store, project_id: int, seeds: set[str]) -> set[str]:
    """Every id reachable from `seeds` over the project's links (failed links included), breadth first."""
    seen = set(seeds)
    frontier = sorted(seeds)
    while frontier:
        rows = store.rows(
            f"""SELECT primary_id, other_id FROM {store.table("identity_links")} FINAL
                WHERE project_id = {{p:Int64}} AND deleted = 0
                  AND (has({{ids:Array(String)}}, primary_id) OR has({{ids:Array(String)}}, other_id))""",
            {"p": project_id, "ids": frontier},
        )
        found = {str(r["primary_id"]) for r in rows} | {str(r["other_id"]) for r in rows}
        frontier = sorted(found - seen)
        seen |= found
    return seen


def _apply_original_links(store: Store, links: Sequence[ProjectLink]) -> None:
    unique = sorted({(p, lk.kind.value, lk.time_ms, lk.primary, lk.other) for p, lk in links})
    version = store.version()
    store.insert(
        "identity_links",
        ("project_id", "kind", "time_ms", "primary_id", "other_id", "version", "deleted"),
        [(*u, version, 0) for u in unique],
    )
    seeds: dict[int, set[str]] = defaultdict(set)
    for p, _kind, _t, primary, other in unique:
        seeds[p] |= {primary, other}
    for project_id, ids in seeds.items():
        component = _component(store, project_id, ids)
        rows = store.rows(
            f"""SELECT kind, time_ms, primary_id, other_id FROM {store.table("identity_links")} FINAL
                WHERE project_id = {{p:Int64}} AND deleted = 0 AND has({{ids:Array(String)}}, primary_id)""",
            {"p": project_id, "ids": sorted(component)},
        )
        resolved = rules.resolve_original(
            IdentityLink(LinkKind(r["kind"]), int(r["time_ms"]), str(r["primary_id"]), str(r["other_id"])) for r in rows
        ).mapping()
        # Ids of the component that are their own canonical id lose their row; the others get theirs.
        _map_rows(
            store,
            [(project_id, i, resolved.get(i, i), 0 if i in resolved else 1) for i in sorted(component)],
        )
        _fold_profiles(store, project_id, resolved)


def _fold_profiles(store: Store, project_id: int, resolved: dict[str, str]) -> None:
    """Profiles of ids that are no longer canonical join their canonical id's profile (Original only).
    The canonical profile's properties win; among folded profiles the most recently updated wins."""
    if not resolved:
        return
    moved = store.rows(
        f"""SELECT distinct_id, properties, updated_ms FROM {store.table("profiles")} FINAL
            WHERE project_id = {{p:Int64}} AND deleted = 0 AND has({{ids:Array(String)}}, distinct_id)
            ORDER BY updated_ms, distinct_id""",
        {"p": project_id, "ids": sorted(resolved)},
    )
    if not moved:
        return
    targets = sorted({resolved[str(r["distinct_id"])] for r in moved})
    existing = {
        str(r["distinct_id"]): (orjson.loads(r["properties"]), int(r["updated_ms"]))
        for r in store.rows(
            f"""SELECT distinct_id, properties, updated_ms FROM {store.table("profiles")} FINAL
                WHERE project_id = {{p:Int64}} AND deleted = 0 AND has({{ids:Array(String)}}, distinct_id)""",
            {"p": project_id, "ids": targets},
        )
    }
    folded: dict[str, tuple[dict[str, Any], int]] = {}
    for r in moved:
        canonical = resolved[str(r["distinct_id"])]
        props, latest = folded.get(canonical, ({}, 0))
        props.update(orjson.loads(r["properties"]))
        folded[canonical] = (props, max(latest, int(r["updated_ms"])))
    for key, (props, latest) in folded.items():
        if key in existing:
            own, own_ms = existing[key]
            props.update(own)
            folded[key] = (props, max(latest, own_ms))
    version = store.version()
    columns = ("project_id", "distinct_id", "properties", "updated_ms", "version", "deleted")
    gone = [(project_id, str(r["distinct_id"]), "{}", 0, version, 1) for r in moved]
    live = [(project_id, k, orjson.dumps(v[0]).decode(), v[1], version, 0) for k, v in folded.items()]
    store.insert("profiles", columns, gone + live)


# -- profile writes ------------------------------------------------------------------------------


def resolve_profile_updates(store: Store, updates: list[ProfileUpdate]) -> list[ProfileUpdate]:
    """Original ID Merge sends an update of any id of a cluster to the canonical id's profile; Simplified
    keeps profiles on the id they were sent to (a device link's map row has its identity_devices row)."""
    if not updates:
        return updates
    by_project: dict[int, set[str]] = defaultdict(set)
    for u in updates:
        by_project[u.project_id].add(u.key[0])
    canonical: dict[tuple[int, str], str] = {}
    for project_id, ids in by_project.items():
        rows = store.rows(
            f"""SELECT m.distinct_id AS d, m.canonical_id AS c FROM {store.table("identity_map")} AS m FINAL
                WHERE m.project_id = {{p:Int64}} AND m.deleted = 0 AND has({{ids:Array(String)}}, m.distinct_id)
                  AND m.distinct_id NOT IN (
                      SELECT device_distinct_id FROM {store.table("identity_devices")} FINAL
                      WHERE project_id = {{p:Int64}} AND deleted = 0 AND has({{ids:Array(String)}}, device_distinct_id))""",
            {"p": project_id, "ids": sorted(ids)},
        )
        canonical.update({(project_id, str(r["d"])): str(r["c"]) for r in rows})
    if not canonical:
        return updates
    return [
        replace(u, key=(canonical[(u.project_id, u.key[0])],)) if (u.project_id, u.key[0]) in canonical else u
        for u in updates
    ]
