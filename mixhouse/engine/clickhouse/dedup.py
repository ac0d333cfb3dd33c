"""Mixpanel's event deduplication on ClickHouse: of the events sharing (event, distinct_id, time, $insert_id)
reports keep only the latest (https://developer.mixpanel.com/reference/event-deduplication). Every event is
stored; after each insert the writer lists the older copies of the inserted keys in `superseded_events`,
which reads exclude.

The look-up costs what the batch holds, not what the store holds. Each key with an insert id also gets a
row (project, 64-bit hash of the key) in `dedup_keys`, a narrow table ordered by that hash with small
granules (256 rows), written *before* the events. A batch's keys are looked up there first: a hash seen more
than once is a candidate, which is nearly never the case. Only the candidates' keys are then matched
exactly against the events: a copy of a key has the same distinct id (so the same user key) and the same
time, so `(user_key, time_ms) IN <the candidates' pairs>` lets the events table's primary key (project,
user key, time) skip every granule without one, and the whole key is matched by a hash set.

Why the hash table: a batch of 10,000 random users spread over a month has one of its (user, time) pairs in
nearly every granule of the events table, so matching every key of the batch against the events read the
key columns of most of the store at every batch (ingestion of 10M events ran at half the rate of 1M). In
`dedup_keys` the same batch reads at most 10,000 granules of 256 hashes. A row there without its event (a
write that failed after it, an event deleted later) or a repeated row (a retried write) only makes its key
a candidate, which the exact match then settles: the marks stay exact."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from mixhouse.engine.clickhouse.schema import user_key_sql
from mixhouse.engine.clickhouse.store import Store

Key = tuple[str, str, int, str]  # event, distinct_id, time_ms, insert_id

# The hash of a key: the same function of the same types whether it reads the batch's keys (a tuple
# String, String, Int64, String) or the events' columns.
KEY_HASH = "sipHash64({}, {}, {}, {})"
_BATCH = (
    "WITH batch AS (SELECT arrayJoin(JSONExtract({keys:String}, 'Array(Tuple(String, String, Int64, String))')) AS k)"
)


def _batch_hash() -> str:
    return KEY_HASH.format("k.1", "k.2", "k.3", "k.4")


def record_select(db: str) -> str:
    """The `dedup_keys` rows of the keys in the parameter `keys` of project `p`."""
    return f"""INSERT INTO {db}.dedup_keys (project_id, key_hash)
        {_BATCH}
        SELECT {{p:Int64}}, {_batch_hash()} FROM batch"""


def repeated_select(db: str) -> str:
    """The hashes of the keys in the parameter `keys` of project `p` that `dedup_keys` holds more than once
    (nearly always none). `keys` is the JSON text of the keys (`keys_param`): ClickHouse parses 10,000 keys
    from JSON in ~4 ms, from an Array(Tuple(...)) parameter in ~90 ms (chDB, measured)."""
    return f"""{_BATCH}
        SELECT key_hash FROM {db}.dedup_keys
        WHERE project_id = {{p:Int64}} AND key_hash IN (SELECT {_batch_hash()} FROM batch)
        GROUP BY key_hash HAVING count() > 1"""


def superseded_select(db: str) -> str:
    """The seqs of older copies of the keys in the parameter `keys` of project `p` whose hash is in the
    parameter `repeated`: every seq of a key but its highest."""
    return f"""{_BATCH},
        candidates AS (SELECT k FROM batch WHERE has({{repeated:Array(UInt64)}}, {_batch_hash()}))
        SELECT project_id, arrayJoin(arrayPopBack(arraySort(groupArray(seq)))) AS seq
        FROM {db}.events
        WHERE project_id = {{p:Int64}}
          AND (user_key, time_ms) IN (SELECT {user_key_sql("k.2")}, k.3 FROM candidates)
          AND insert_id IS NOT NULL
          AND (event, distinct_id, time_ms, assumeNotNull(insert_id)) IN (SELECT k FROM candidates)
        GROUP BY project_id, event, distinct_id, time_ms, insert_id
        HAVING count() > 1"""


def record_keys(store: Store, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write the `dedup_keys` rows of event rows about to be inserted, one per event (two copies of a key in
    one batch are two rows), before the events: a row without its event is harmless, an event without its
    row would never be found as a copy. A retry of the same rows (the same sequence numbers) carries the
    same deduplication token; the same keys sent again by a client do not."""
    seqs: dict[int, list[int]] = {}
    for r in rows:
        if r[5] is not None:
            seqs.setdefault(int(r[0]), []).append(int(r[1]))
    for project_id, keys in event_keys(rows).items():
        param = keys_param(keys)
        token = hashlib.sha256(orjson.dumps([project_id, seqs[project_id], param])).hexdigest()
        store.driver.command(
            f"{record_select(store.db)}\nSETTINGS insert_deduplication_token = 'dedup_keys:{token}'",
            {"p": project_id, "keys": param},
        )


def mark_superseded(store: Store, keys_by_project: dict[int, set[Key]]) -> None:
    """List the older copies of these just-inserted keys in `superseded_events` (idempotent: a retry lists
    the same seqs again, and the table collapses repeats). Two statements: the repeated hashes, then, only
    when there are some, the exact match of their keys against the events."""
    for project_id, keys in keys_by_project.items():
        if not keys:
            continue
        params: dict[str, Any] = {"p": project_id, "keys": keys_param(keys)}
        repeated = store.rows(repeated_select(store.db), params)
        if repeated:
            store.driver.command(
                f"INSERT INTO {store.db}.superseded_events (project_id, seq)\n{superseded_select(store.db)}",
                {**params, "repeated": sorted(int(r["key_hash"]) for r in repeated)},
            )


def backfill_statements(db: str, create_sql: str, cluster: str | None) -> list[str]:
    """A store written before `dedup_keys` existed gets it filled from its events, under another name and
    renamed once full, so that a start interrupted midway starts the fill over (`create_sql`: the table's
    CREATE statement, single node or cluster)."""
    building = f"{db}.dedup_keys_backfill"
    on = f" ON CLUSTER {cluster}" if cluster else ""
    create = create_sql.replace(f"{db}.dedup_keys ", f"{building} ", 1).replace(
        f"/{db}/dedup_keys'", f"/{db}/dedup_keys_backfill'"
    )
    key_hash = KEY_HASH.format("event", "distinct_id", "time_ms", "assumeNotNull(insert_id)")
    return [
        f"DROP TABLE IF EXISTS {building}{on} SYNC",
        create,
        f"INSERT INTO {building} (project_id, key_hash)"
        f" SELECT project_id, {key_hash} FROM {db}.events WHERE insert_id IS NOT NULL",
        f"RENAME TABLE {building} TO {db}.dedup_keys{on}",
    ]


def forget_statement(db: str, events_where: str) -> str:
    """Delete the `dedup_keys` rows of the events matching `events_where` (run before those events are deleted:
    a GDPR deletion leaves no hash of the ids behind)."""
    key_hash = KEY_HASH.format("event", "distinct_id", "time_ms", "assumeNotNull(insert_id)")
    return f"""DELETE FROM {db}.dedup_keys WHERE project_id = {{p:Int64}} AND key_hash IN (
        SELECT {key_hash} FROM {db}.events WHERE {events_where} AND insert_id IS NOT NULL)"""


def keys_param(keys: Iterable[Key]) -> str:
    return orjson.dumps(sorted(keys)).decode()


def event_keys(rows: Sequence[tuple[Any, ...]]) -> dict[int, list[Key]]:
    """The dedup key of each event row (project_id, seq, time_ms, event, distinct_id, insert_id, ...) that
    has an insert id, by project."""
    out: dict[int, list[Key]] = {}
    for r in rows:
        if r[5] is not None:
            out.setdefault(int(r[0]), []).append((str(r[3]), str(r[4]), int(r[2]), str(r[5])))
    return out


def batch_keys(rows: Sequence[tuple[Any, ...]]) -> dict[int, set[Key]]:
    """The distinct dedup keys of event rows, by project."""
    return {project: set(keys) for project, keys in event_keys(rows).items()}
