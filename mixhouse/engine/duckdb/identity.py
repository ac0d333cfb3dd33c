"""Keeping `identity_map` up to date, inside the writer's transaction (so the map is as durable as the events).

The rules are `mixhouse.domain.identity`; this module stores their input (the links) and their output (the
map), recomputing only what a write group can change:

- Simplified: a device's winner only changes when a link of that device arrives; compare with the stored
  winner and rewrite the changed devices.
- Original: the links reachable from the new ones (a connected component of the link graph, failed links
  included) are replayed in event-time order; the map rows of that component are replaced. Profiles of ids
  that stop being canonical are folded into their canonical id's profile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from mixhouse.domain import identity as rules
from mixhouse.domain.identity import IdentityLink, LinkKind
from mixhouse.domain.profiles import ProfileUpdate
from mixhouse.engine.duckdb.schema import user_key_sql

ProjectLink = tuple[int, IdentityLink]


def apply_links(conn: duckdb.DuckDBPyConnection, links: Sequence[ProjectLink]) -> None:
    devices = [(p, lk) for p, lk in links if lk.kind is LinkKind.DEVICE]
    originals = [(p, lk) for p, lk in links if lk.kind is not LinkKind.DEVICE]
    if devices:
        _apply_device_links(conn, devices)
    if originals:
        _apply_original_links(conn, originals)


def _register(conn: duckdb.DuckDBPyConnection, name: str, columns: dict[str, pa.Array]) -> None:
    conn.register(name, pa.table(columns))


# -- Simplified ----------------------------------------------------------------------------------


def _apply_device_links(conn: duckdb.DuckDBPyConnection, links: Sequence[ProjectLink]) -> None:
    best: dict[tuple[int, str], IdentityLink] = {}
    for project_id, link in links:
        key = (project_id, link.other)
        current = best.get(key)
        best[key] = link if current is None else rules.first_link(current, link)
    keys = list(best)
    _register(
        conn,
        "incoming_devices",
        {
            "project_id": pa.array([k[0] for k in keys], pa.int64()),
            "device_distinct_id": pa.array([k[1] for k in keys], pa.string()),
        },
    )
    stored = conn.execute(
        """SELECT d.project_id, d.device_distinct_id, d.user_id, d.time_ms
           FROM identity_devices d JOIN incoming_devices i USING (project_id, device_distinct_id)"""
    ).fetchall()
    conn.unregister("incoming_devices")
    for project_id, device, user, time_ms in stored:
        key = (int(project_id), str(device))
        existing = IdentityLink(LinkKind.DEVICE, int(time_ms), str(user), str(device))
        winner = rules.first_link(existing, best[key])
        if winner == existing:
            del best[key]  # unchanged
        else:
            best[key] = winner
    if not best:
        return
    rows = [(k[0], k[1], lk.primary, lk.time_ms) for k, lk in best.items()]
    _register(
        conn,
        "changed_devices",
        {
            "project_id": pa.array([r[0] for r in rows], pa.int64()),
            "device_distinct_id": pa.array([r[1] for r in rows], pa.string()),
            "user_id": pa.array([r[2] for r in rows], pa.string()),
            "time_ms": pa.array([r[3] for r in rows], pa.int64()),
        },
    )
    conn.execute("INSERT OR REPLACE INTO identity_devices SELECT * FROM changed_devices")
    conn.execute(
        f"""INSERT OR REPLACE INTO identity_map
            SELECT project_id, device_distinct_id, user_id, {user_key_sql("device_distinct_id")},
                   {user_key_sql("user_id")}
            FROM changed_devices WHERE device_distinct_id <> user_id"""
    )
    conn.unregister("changed_devices")


# -- Original ------------------------------------------------------------------------------------

_COMPONENT_SQL = """
WITH RECURSIVE edges AS (
    SELECT l.project_id, l.primary_id AS x, l.other_id AS y FROM identity_links l SEMI JOIN seed_projects s USING (project_id)
    UNION ALL
    SELECT l.project_id, l.other_id, l.primary_id FROM identity_links l SEMI JOIN seed_projects s USING (project_id)
), component(project_id, id) AS (
    SELECT project_id, id FROM seed_ids
    UNION
    SELECT e.project_id, e.y FROM component c JOIN edges e ON e.project_id = c.project_id AND e.x = c.id
)
SELECT DISTINCT project_id, id FROM component
"""


def _apply_original_links(conn: duckdb.DuckDBPyConnection, links: Sequence[ProjectLink]) -> None:
    unique = sorted({(p, lk.kind.value, lk.time_ms, lk.primary, lk.other) for p, lk in links})
    _register(
        conn,
        "incoming_links",
        {
            "project_id": pa.array([u[0] for u in unique], pa.int64()),
            "kind": pa.array([u[1] for u in unique], pa.string()),
            "time_ms": pa.array([u[2] for u in unique], pa.int64()),
            "primary_id": pa.array([u[3] for u in unique], pa.string()),
            "other_id": pa.array([u[4] for u in unique], pa.string()),
        },
    )
    # A link already known changes nothing (the replay works on the set of links).
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE fresh_links AS SELECT * FROM incoming_links i WHERE NOT EXISTS (
               SELECT 1 FROM identity_links l WHERE l.project_id = i.project_id AND l.kind = i.kind
               AND l.time_ms = i.time_ms AND l.primary_id = i.primary_id AND l.other_id = i.other_id)"""
    )
    conn.unregister("incoming_links")
    row = conn.execute("SELECT count(*) FROM fresh_links").fetchone()
    if not row or row[0] == 0:
        conn.execute("DROP TABLE fresh_links")
        return
    conn.execute("INSERT INTO identity_links SELECT * FROM fresh_links")
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE seed_ids AS
           SELECT project_id, primary_id AS id FROM fresh_links UNION SELECT project_id, other_id FROM fresh_links"""
    )
    conn.execute("DROP TABLE fresh_links")
    conn.execute("CREATE OR REPLACE TEMP TABLE seed_projects AS SELECT DISTINCT project_id FROM seed_ids")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE component_ids AS {_COMPONENT_SQL}")
    component_links = conn.execute(
        """SELECT l.project_id, l.kind, l.time_ms, l.primary_id, l.other_id
           FROM identity_links l JOIN component_ids c ON l.project_id = c.project_id AND l.primary_id = c.id"""
    ).fetchall()
    by_project: dict[int, list[IdentityLink]] = defaultdict(list)
    for project_id, kind, time_ms, primary, other in component_links:
        by_project[int(project_id)].append(IdentityLink(LinkKind(kind), int(time_ms), str(primary), str(other)))
    new_rows = [
        (project_id, id_, canonical)
        for project_id, project_links in by_project.items()
        for id_, canonical in rules.resolve_original(project_links).mapping().items()
    ]
    _register(
        conn,
        "new_map",
        {
            "project_id": pa.array([r[0] for r in new_rows], pa.int64()),
            "distinct_id": pa.array([r[1] for r in new_rows], pa.string()),
            "canonical_id": pa.array([r[2] for r in new_rows], pa.string()),
        },
    )
    # Ids of the component that are their own canonical id now lose their row; the others get theirs.
    conn.execute(
        """DELETE FROM identity_map m USING component_ids c
           WHERE m.project_id = c.project_id AND m.distinct_id = c.id
             AND NOT EXISTS (SELECT 1 FROM new_map n WHERE n.project_id = m.project_id AND n.distinct_id = m.distinct_id)"""
    )
    conn.execute(
        f"""INSERT OR REPLACE INTO identity_map
            SELECT project_id, distinct_id, canonical_id, {user_key_sql("distinct_id")}, {user_key_sql("canonical_id")}
            FROM new_map"""
    )
    _fold_profiles(conn)
    conn.unregister("new_map")
    conn.execute("DROP TABLE seed_ids")
    conn.execute("DROP TABLE seed_projects")
    conn.execute("DROP TABLE component_ids")


def _fold_profiles(conn: duckdb.DuckDBPyConnection) -> None:
    """Profiles of ids that are no longer canonical join their canonical id's profile (Original only).

    [I] The canonical profile's properties win; among folded profiles the most recently updated wins."""
    moved = conn.execute(
        """SELECT p.project_id, n.canonical_id, p.distinct_id, p.properties, p.updated_ms
           FROM profiles p JOIN new_map n ON p.project_id = n.project_id AND p.distinct_id = n.distinct_id
           ORDER BY p.updated_ms, p.distinct_id"""
    ).fetchall()
    if not moved:
        return
    targets = sorted({(int(r[0]), str(r[1])) for r in moved})
    _register(
        conn,
        "fold_targets",
        {
            "project_id": pa.array([t[0] for t in targets], pa.int64()),
            "distinct_id": pa.array([t[1] for t in targets], pa.string()),
        },
    )
    existing = {
        (int(r[0]), str(r[1])): (orjson.loads(r[2]), int(r[3]))
        for r in conn.execute(
            """SELECT p.project_id, p.distinct_id, p.properties, p.updated_ms
               FROM profiles p JOIN fold_targets t USING (project_id, distinct_id)"""
        ).fetchall()
    }
    conn.unregister("fold_targets")
    folded: dict[tuple[int, str], tuple[dict[str, Any], int]] = {}
    for project_id, canonical, _id, properties, updated_ms in moved:
        key = (int(project_id), str(canonical))
        props, latest = folded.get(key, ({}, 0))
        props.update(orjson.loads(properties))
        folded[key] = (props, max(latest, int(updated_ms)))
    for key, (props, latest) in folded.items():
        if key in existing:
            own, own_ms = existing[key]
            props.update(own)
            folded[key] = (props, max(latest, own_ms))
    conn.executemany(
        "DELETE FROM profiles WHERE project_id = ? AND distinct_id = ?", [[int(r[0]), str(r[2])] for r in moved]
    )
    rows = list(folded.items())
    _register(
        conn,
        "folded_profiles",
        {
            "project_id": pa.array([k[0] for k, _ in rows], pa.int64()),
            "distinct_id": pa.array([k[1] for k, _ in rows], pa.string()),
            "properties": pa.array([orjson.dumps(v[0]).decode() for _, v in rows], pa.string()),
            "updated_ms": pa.array([v[1] for _, v in rows], pa.int64()),
        },
    )
    conn.execute("INSERT OR REPLACE INTO profiles SELECT * FROM folded_profiles")
    conn.unregister("folded_profiles")


# -- profile writes ------------------------------------------------------------------------------


def resolve_profile_updates(conn: duckdb.DuckDBPyConnection, updates: list[ProfileUpdate]) -> list[ProfileUpdate]:
    """Original ID Merge: an update sent to any id of a cluster goes to the canonical id's profile (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-original).
    Simplified keeps profiles on the id they were sent to: device profiles are not carried over (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-simplified)."""
    if not updates:
        return updates
    keys = sorted({(u.project_id, u.key[0]) for u in updates})
    _register(
        conn,
        "profile_keys",
        {
            "project_id": pa.array([k[0] for k in keys], pa.int64()),
            "distinct_id": pa.array([k[1] for k in keys], pa.string()),
        },
    )
    # A map row from a Simplified device link has its identity_devices row; Original rows never do.
    canonical = {
        (int(r[0]), str(r[1])): str(r[2])
        for r in conn.execute(
            """SELECT k.project_id, k.distinct_id, m.canonical_id
               FROM profile_keys k JOIN identity_map m USING (project_id, distinct_id)
               WHERE NOT EXISTS (SELECT 1 FROM identity_devices d
                                 WHERE d.project_id = k.project_id AND d.device_distinct_id = k.distinct_id)"""
        ).fetchall()
    }
    conn.unregister("profile_keys")
    if not canonical:
        return updates
    return [
        replace(u, key=(canonical[(u.project_id, u.key[0])],)) if (u.project_id, u.key[0]) in canonical else u
        for u in updates
    ]
