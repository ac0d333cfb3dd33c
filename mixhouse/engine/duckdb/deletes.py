"""GDPR/CCPA deletions and retrievals on DuckDB: the identity cluster of some ids, everything stored
about it, and its removal in one transaction on the writer thread (engine.DuckDBEngine.delete_users).

A cluster is every id that resolves to the same canonical id as one of the ids asked for: the ids
themselves, their canonical ids, and every id the identity map points at those. Deleting it removes
- the events sent under any of its ids (duplicates included) and their dedup marks;
- the user profiles stored under any of them (profiles are kept under the canonical id);
- the identity map rows, Simplified device links and Original merge links that name any of them,
so that a later event of one of these ids starts a new history: a new device link wins again, a new
`$identify` merges afresh. Group profiles are not a user's data and stay.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import duckdb
import orjson
import pyarrow as pa

from mixhouse.engine.base import DeleteResult
from mixhouse.engine.duckdb import property_counts

EVENT_BATCH_ROWS = 10_000


def register_cluster(conn: duckdb.DuckDBPyConnection, project_id: int, distinct_ids: list[str]) -> list[str]:
    """Create the temp table `doomed_ids(id)` on `conn` with the cluster of these ids; its ids, sorted."""
    conn.register("asked_ids", pa.table({"id": pa.array(sorted(set(distinct_ids)), pa.string())}))
    try:
        conn.execute(
            """CREATE OR REPLACE TEMP TABLE doomed_ids AS
               WITH canon AS (
                   SELECT coalesce(m.canonical_id, a.id) AS id
                   FROM asked_ids a LEFT JOIN identity_map m ON m.project_id = $p AND m.distinct_id = a.id
               )
               SELECT id FROM asked_ids
               UNION SELECT id FROM canon
               UNION SELECT m.distinct_id FROM identity_map m SEMI JOIN canon c ON m.canonical_id = c.id
                     WHERE m.project_id = $p""",
            {"p": project_id},
        )
    finally:
        conn.unregister("asked_ids")
    return sorted(str(r[0]) for r in conn.execute("SELECT id FROM doomed_ids").fetchall())


def _count(conn: duckdb.DuckDBPyConnection, sql: str, project_id: int) -> int:
    rows = conn.execute(sql, {"p": project_id}).fetchall()
    return int(rows[0][0]) if rows else 0


def delete_users(
    conn: duckdb.DuckDBPyConnection, project_id: int, distinct_ids: list[str], *, drill_pause_seconds: float = 0.0
) -> DeleteResult:
    """On the writer's connection, in one transaction: all or nothing, also across a crash.
    `drill_pause_seconds` (the delete_drill_pause_seconds setting, crash drills only) holds the deletion
    open before its commit, so that a drill can kill the server while it is STARTED."""
    conn.execute("BEGIN TRANSACTION")
    try:
        cluster = register_cluster(conn, project_id, distinct_ids)
        conn.execute(
            """DELETE FROM superseded_events WHERE project_id = $p AND seq IN (
                   SELECT seq FROM events WHERE project_id = $p AND distinct_id IN (SELECT id FROM doomed_ids))""",
            {"p": project_id},
        )
        property_counts.subtract(
            conn, "project_id = $p AND distinct_id IN (SELECT id FROM doomed_ids)", {"p": project_id}
        )
        events = _count(
            conn, "DELETE FROM events WHERE project_id = $p AND distinct_id IN (SELECT id FROM doomed_ids)", project_id
        )
        profiles = _count(
            conn,
            "DELETE FROM profiles WHERE project_id = $p AND distinct_id IN (SELECT id FROM doomed_ids)",
            project_id,
        )
        for sql in (
            """DELETE FROM identity_map WHERE project_id = $p
               AND (distinct_id IN (SELECT id FROM doomed_ids) OR canonical_id IN (SELECT id FROM doomed_ids))""",
            """DELETE FROM identity_devices WHERE project_id = $p
               AND (device_distinct_id IN (SELECT id FROM doomed_ids) OR user_id IN (SELECT id FROM doomed_ids))""",
            """DELETE FROM identity_links WHERE project_id = $p
               AND (primary_id IN (SELECT id FROM doomed_ids) OR other_id IN (SELECT id FROM doomed_ids))""",
        ):
            conn.execute(sql, {"p": project_id})
        conn.execute("DROP TABLE doomed_ids")
        if drill_pause_seconds > 0:
            time.sleep(drill_pause_seconds)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # an invalidated database refuses the rollback too
            conn.execute("ROLLBACK")
        raise
    forget_cached_users(project_id)
    return DeleteResult(tuple(cluster), events, profiles)


def delete_events(conn: duckdb.DuckDBPyConnection, project_id: int, insert_ids: list[str]) -> int:
    """Every event of the project carrying one of these `$insert_id`s, and their dedup marks, in one
    transaction on the writer's connection; the number of event rows deleted."""
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.register("doomed_insert_ids", pa.table({"id": pa.array(sorted(set(insert_ids)), pa.string())}))
        try:
            conn.execute(
                """DELETE FROM superseded_events WHERE project_id = $p AND seq IN (
                       SELECT seq FROM events WHERE project_id = $p AND insert_id IN (SELECT id FROM doomed_insert_ids))""",
                {"p": project_id},
            )
            property_counts.subtract(
                conn, "project_id = $p AND insert_id IN (SELECT id FROM doomed_insert_ids)", {"p": project_id}
            )
            deleted = _count(
                conn,
                "DELETE FROM events WHERE project_id = $p AND insert_id IN (SELECT id FROM doomed_insert_ids)",
                project_id,
            )
        finally:
            conn.unregister("doomed_insert_ids")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            conn.execute("ROLLBACK")
        raise
    return deleted


def forget_cached_users(project_id: int) -> None:
    """Drop what queries keep of a project's users between requests: `/engage` keeps the id lists of paged
    queries (a later page would list a deleted id). They are recomputed on the next page."""
    from mixhouse.engine.duckdb.queries.engage import forget_snapshots

    forget_snapshots(project_id)


# -- retrievals ------------------------------------------------------------------------------------

_EVENT_LINE = """
SELECT '{"event":' || to_json(e.event) || ',"properties":{"time":' || CAST(e.time_ms // 1000 AS VARCHAR)
       || ',"distinct_id":' || to_json(coalesce(m.canonical_id, e.distinct_id))
       || CASE WHEN m.canonical_id IS NULL OR m.canonical_id = e.distinct_id THEN ''
               ELSE ',"$distinct_id_before_identity":' || to_json(e.distinct_id) END
       || CASE WHEN e.properties = '{}' THEN '}' ELSE ',' || substr(e.properties, 2) END
       || '}' || chr(10) AS line
FROM events e
LEFT JOIN identity_map m ON m.project_id = e.project_id AND m.distinct_id = e.distinct_id
WHERE e.project_id = $p AND e.distinct_id IN (SELECT id FROM doomed_ids) AND e.time_ms >= $since
ORDER BY e.time_ms, e.seq
"""


def canonical_ids(conn: duckdb.DuckDBPyConnection, project_id: int) -> dict[str, str]:
    """Each id of the registered cluster -> its canonical id."""
    rows = conn.execute(
        """SELECT d.id, coalesce(m.canonical_id, d.id) FROM doomed_ids d
           LEFT JOIN identity_map m ON m.project_id = $p AND m.distinct_id = d.id ORDER BY d.id""",
        {"p": project_id},
    ).fetchall()
    return {str(a): str(b) for a, b in rows}


def profiles_of_cluster(conn: duckdb.DuckDBPyConnection, project_id: int) -> dict[str, dict[str, object]]:
    rows = conn.execute(
        """SELECT distinct_id, CAST(properties AS VARCHAR) FROM profiles
           WHERE project_id = $p AND distinct_id IN (SELECT id FROM doomed_ids) ORDER BY distinct_id""",
        {"p": project_id},
    ).fetchall()
    return {str(d): orjson.loads(p) for d, p in rows}


def event_lines(conn: duckdb.DuckDBPyConnection, project_id: int, since_ms: int | None) -> Iterator[bytes]:
    """The cluster's events as export lines, oldest first, in chunks; closes `conn` when done."""
    try:
        reader = conn.sql(_EVENT_LINE, params={"p": project_id, "since": since_ms or -(2**62)}).to_arrow_reader(
            EVENT_BATCH_ROWS
        )
        for batch in reader:
            column = batch.column(0)
            yield "".join(column.to_pylist()).encode()
    finally:
        conn.close()
