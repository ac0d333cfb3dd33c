"""GDPR/CCPA deletions and retrievals on ClickHouse (engine.ClickHouseEngine.delete_users, user_data).

A cluster is every id that resolves to the same canonical id as one of the ids asked for, as on the
embedded engine (mixhouse/engine/duckdb/deletes.py). Deleting it removes the events sent under any of its
ids with a lightweight `DELETE` (rows are masked at once and dropped by later merges; a mutation, `ALTER
TABLE ... DELETE`, would rewrite every part it touches in the background, and the rows would stay visible
until it finishes), and writes `deleted` versions of its profiles and identity rows (map, device links,
merge links), so that a later event of one of these ids starts a new history. It runs on the writer thread,
between two group commits, so no write of the same users runs beside it; ClickHouse has no transaction
across tables, so a crash part-way leaves a partial deletion that running it again completes (every step
is idempotent), which the GDPR job runner does for a job that did not finish."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from mixhouse.engine.base import DeleteResult
from mixhouse.engine.clickhouse import dedup
from mixhouse.engine.clickhouse.relations import identity_map_sql
from mixhouse.engine.clickhouse.store import Store

EVENT_BATCH_ROWS = 10_000


def cluster(store: Store, project_id: int, distinct_ids: list[str]) -> dict[str, str]:
    """Each id of the cluster of these ids -> its canonical id."""
    asked = sorted(set(distinct_ids))
    rows = store.rows(
        f"""WITH m AS {identity_map_sql(store.db, "p")},
            canon AS (SELECT DISTINCT if(m.canonical_id = '', a.id, m.canonical_id) AS id
                      FROM (SELECT arrayJoin({{ids:Array(String)}}) AS id) AS a LEFT JOIN m ON m.distinct_id = a.id)
            SELECT m.distinct_id AS d, m.canonical_id AS c FROM m
            WHERE has({{ids:Array(String)}}, m.distinct_id) OR m.canonical_id IN (SELECT id FROM canon)
            UNION ALL SELECT id AS d, id AS c FROM canon""",
        {"p": project_id, "ids": asked},
    )
    found = {str(r["d"]): str(r["c"]) for r in rows}
    for i in asked:
        found.setdefault(i, i)
    return dict(sorted(found.items()))


def delete_events(store: Store, project_id: int, insert_ids: list[str]) -> int:
    """Every event of the project with one of these `$insert_id`s, and their dedup marks (warehouse imports)."""
    params: dict[str, Any] = {"p": project_id, "ids": sorted(set(insert_ids))}
    db = store.db
    where = "project_id = {p:Int64} AND has({ids:Array(String)}, insert_id)"
    counted = store.rows(f"SELECT count() AS n FROM {db}.events WHERE {where}", params)
    events = int(counted[0]["n"]) if counted else 0
    if events:
        store.driver.command(dedup.forget_statement(db, where), params)
        store.driver.command(
            f"DELETE FROM {db}.superseded_events WHERE project_id = {{p:Int64}} AND seq IN ("
            f" SELECT seq FROM {db}.events WHERE {where})",
            params,
        )
        store.driver.command(f"DELETE FROM {db}.events WHERE {where}", params)
    return events


def delete_users(store: Store, project_id: int, distinct_ids: list[str]) -> DeleteResult:
    ids = sorted(cluster(store, project_id, distinct_ids))
    params: dict[str, Any] = {"p": project_id, "ids": ids}
    db = store.db
    counted = store.rows(
        f"SELECT count() AS n FROM {db}.events WHERE project_id = {{p:Int64}} AND has({{ids:Array(String)}}, distinct_id)",
        params,
    )
    events = int(counted[0]["n"]) if counted else 0
    if events:
        user_events = "project_id = {p:Int64} AND has({ids:Array(String)}, distinct_id)"
        store.driver.command(dedup.forget_statement(db, user_events), params)
        store.driver.command(
            f"DELETE FROM {db}.superseded_events WHERE project_id = {{p:Int64}} AND seq IN ("
            f" SELECT seq FROM {db}.events WHERE project_id = {{p:Int64}} AND has({{ids:Array(String)}}, distinct_id))",
            params,
        )
        store.driver.command(
            f"DELETE FROM {db}.events WHERE project_id = {{p:Int64}} AND has({{ids:Array(String)}}, distinct_id)",
            params,
        )
    version = store.version()
    live = store.rows(
        f"""SELECT distinct_id FROM {db}.profiles FINAL
            WHERE project_id = {{p:Int64}} AND deleted = 0 AND has({{ids:Array(String)}}, distinct_id)""",
        params,
    )
    store.insert(
        "profiles",
        ("project_id", "distinct_id", "properties", "updated_ms", "version", "deleted"),
        [(project_id, str(r["distinct_id"]), "{}", 0, version, 1) for r in live],
    )
    gone_map = store.rows(
        f"""SELECT distinct_id, canonical_id FROM {identity_map_sql(db, "p")}
            WHERE has({{ids:Array(String)}}, distinct_id) OR has({{ids:Array(String)}}, canonical_id)""",
        params,
    )
    store.insert(
        "identity_map",
        ("project_id", "distinct_id", "canonical_id", "version", "deleted"),
        [(project_id, str(r["distinct_id"]), str(r["canonical_id"]), version, 1) for r in gone_map],
    )
    devices = store.rows(
        f"""SELECT device_distinct_id, user_id, time_ms FROM {db}.identity_devices FINAL
            WHERE project_id = {{p:Int64}} AND deleted = 0
              AND (has({{ids:Array(String)}}, device_distinct_id) OR has({{ids:Array(String)}}, user_id))""",
        params,
    )
    store.insert(
        "identity_devices",
        ("project_id", "device_distinct_id", "user_id", "time_ms", "version", "deleted"),
        [(project_id, str(r["device_distinct_id"]), str(r["user_id"]), int(r["time_ms"]), version, 1) for r in devices],
    )
    links = store.rows(
        f"""SELECT kind, time_ms, primary_id, other_id FROM {db}.identity_links FINAL
            WHERE project_id = {{p:Int64}} AND deleted = 0
              AND (has({{ids:Array(String)}}, primary_id) OR has({{ids:Array(String)}}, other_id))""",
        params,
    )
    store.insert(
        "identity_links",
        ("project_id", "kind", "time_ms", "primary_id", "other_id", "version", "deleted"),
        [(project_id, r["kind"], int(r["time_ms"]), r["primary_id"], r["other_id"], version, 1) for r in links],
    )
    from mixhouse.engine.clickhouse.queries.engage import forget_snapshots

    forget_snapshots(store, project_id)
    return DeleteResult(tuple(ids), events, len(live))


def profiles_of(store: Store, project_id: int, ids: list[str]) -> dict[str, dict[str, object]]:
    rows = store.rows(
        f"""SELECT distinct_id, properties FROM {store.db}.profiles FINAL
            WHERE project_id = {{p:Int64}} AND deleted = 0 AND has({{ids:Array(String)}}, distinct_id)
            ORDER BY distinct_id""",
        {"p": project_id, "ids": ids},
    )
    return {str(r["distinct_id"]): orjson.loads(r["properties"]) for r in rows}


def event_lines(store: Store, project_id: int, canonical: dict[str, str], since_ms: int | None) -> Iterator[bytes]:
    """The cluster's events as export lines (canonical id, and the id sent when it differs), oldest first."""
    from mixhouse.engine.clickhouse.engine import export_chunk

    table = store.driver.arrow(
        f"""SELECT time_ms AS t, event, distinct_id AS original, properties FROM {store.db}.events
            WHERE project_id = {{p:Int64}} AND has({{ids:Array(String)}}, distinct_id) AND time_ms >= {{since:Int64}}
            ORDER BY time_ms, seq""",
        {"p": project_id, "ids": sorted(canonical), "since": since_ms if since_ms is not None else -(2**62)},
    )
    for batch in table.to_batches(EVENT_BATCH_ROWS):
        columns = batch.to_pydict()
        columns["distinct_id"] = [canonical.get(o, o) for o in columns["original"]]
        yield export_chunk(columns, False, None)
