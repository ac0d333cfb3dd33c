"""Tables of the ClickHouse engine (single node: chDB, or one ClickHouse server).

Events are a MergeTree ordered by (project, user key, time) and partitioned by month, so that one
project's per-user scans read contiguous ranges and a time range prunes whole partitions. Profiles, group
profiles and the identity map are ReplacingMergeTrees: a write inserts a new version of a key's row and
reads take the latest (`FINAL`); a deletion is a version with `deleted = 1`. Properties are kept as the
JSON text they are exported as (a String column), exactly as the embedded engine keeps them.

Durability: `fsync_after_insert` and `fsync_part_directory` make an INSERT return only once its part is
on disk, so an acknowledged write survives a crash; `non_replicated_deduplication_window` lets a retried
insert with the same `insert_deduplication_token` be stored once on a single node (replicated tables
deduplicate by default).

On a cluster (`clickhouse_cluster`, `--clickhouse-cluster NAME`) `cluster_statements` creates every table
`ON CLUSTER`: events as a ReplicatedMergeTree `events_local` on every shard behind a `Distributed` table
`events` sharded by the user key, so that each id's events live on one shard; the other tables (small next
to events) as ReplicatedReplacingMergeTrees with one replica set spanning every node, so that every shard
joins them locally. The engine reads and writes the same table names either way. docs/scale-out.md shows
the DDL.
"""

from __future__ import annotations

import re

from mixhouse.errors import SettingsError

USER_KEY_SQL = "sipHash64({})"  # the 64-bit key of a distinct id (per-user grouping on an integer)


def user_key_sql(distinct_id_sql: str) -> str:
    return USER_KEY_SQL.format(distinct_id_sql)


_DURABLE = "fsync_after_insert = 1, fsync_part_directory = 1"


def statements(db: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.events (
            project_id  Int64,
            seq         Int64,               -- ingestion order: dedup keeps the highest seq of a key
            time_ms     Int64,               -- UTC epoch milliseconds
            event       String,
            distinct_id String,
            insert_id   Nullable(String),    -- NULL when the sender gave none (never collapses)
            properties  String,              -- every other property, a JSON object as exported
            user_key    UInt64 DEFAULT sipHash64(distinct_id)  -- computed by ClickHouse on insert
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(toDateTime(intDiv(time_ms, 1000), 'UTC'))
        ORDER BY (project_id, user_key, time_ms)
        SETTINGS non_replicated_deduplication_window = 1000, {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.superseded_events (
            project_id Int64,
            seq        Int64
        ) ENGINE = ReplacingMergeTree ORDER BY (project_id, seq)
        SETTINGS non_replicated_deduplication_window = 1000, {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.dedup_keys (
            project_id Int64,
            key_hash   UInt64                -- dedup.KEY_HASH of an event's (event, distinct_id, time, $insert_id)
        ) ENGINE = MergeTree ORDER BY (project_id, key_hash)
        SETTINGS index_granularity = 256, min_compress_block_size = 4096, max_compress_block_size = 8192,
            non_replicated_deduplication_window = 1000, {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.profiles (
            project_id  Int64,
            distinct_id String,
            properties  String,
            updated_ms  Int64,
            version     UInt64,
            deleted     UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, distinct_id)
        SETTINGS {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.group_profiles (
            project_id  Int64,
            group_key   String,
            group_id    String,
            properties  String,
            updated_ms  Int64,
            version     UInt64,
            deleted     UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, group_key, group_id)
        SETTINGS {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.identity_map (
            project_id    Int64,
            distinct_id   String,
            canonical_id  String,
            distinct_key  UInt64 DEFAULT sipHash64(distinct_id),
            canonical_key UInt64 DEFAULT sipHash64(canonical_id),
            version       UInt64,
            deleted       UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, distinct_id)
        SETTINGS {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.identity_devices (
            project_id         Int64,
            device_distinct_id String,
            user_id            String,
            time_ms            Int64,
            version            UInt64,
            deleted            UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, device_distinct_id)
        SETTINGS {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.identity_links (
            project_id Int64,
            kind       String,
            time_ms    Int64,
            primary_id String,
            other_id   String,
            version    UInt64,
            deleted    UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, primary_id, other_id, kind, time_ms)
        SETTINGS {_DURABLE}""",
        # Engage paging: the ordered id list of a query's session (queries/engage.py), shared by every API
        # process; a list is found through its session row, written once the list is complete. Kept a day.
        f"""CREATE TABLE IF NOT EXISTS {db}.engage_lists (
            project_id  Int64,
            session_id  String,
            list_id     String,
            distinct_id String,
            created_ms  Int64
        ) ENGINE = MergeTree ORDER BY (project_id, session_id, list_id, distinct_id)
        TTL toDateTime(intDiv(created_ms, 1000)) + INTERVAL 1 DAY
        SETTINGS {_DURABLE}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.engage_sessions (
            project_id Int64,
            session_id String,
            query_key  String,
            list_id    String,
            total      UInt64,
            created_ms Int64
        ) ENGINE = MergeTree ORDER BY (project_id, session_id, query_key)
        TTL toDateTime(intDiv(created_ms, 1000)) + INTERVAL 1 DAY
        SETTINGS {_DURABLE}""",
    ]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_identifier(what: str, value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise SettingsError(f"{what} must be a ClickHouse identifier (letters, digits, _), got {value!r}")
    return value


_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) \(")
_ENGINE = re.compile(r"\) ENGINE = (\w*MergeTree)(\([^)]*\))?")
_LOCAL_DEDUP = re.compile(r"non_replicated_deduplication_window = \d+, ")


def cluster_statements(db: str, cluster: str) -> list[str]:
    """The DDL of a cluster named `cluster` in the servers' `remote_servers` (with `{shard}` and `{replica}`
    macros on every node): the single-node tables, replicated and created ON CLUSTER, with events sharded.
    Replicated tables deduplicate retried inserts by token without `non_replicated_deduplication_window`."""
    _check_identifier("clickhouse_cluster", cluster)
    _check_identifier("clickhouse_database", db)
    out = [f"CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER {cluster}"]
    for sql in statements(db):
        created = _CREATE.search(sql)
        engine = _ENGINE.search(sql)
        assert created is not None and engine is not None, sql
        table = created.group(2)
        local = "events_local" if table == "events" else table
        path = (
            f"/clickhouse/tables/{{shard}}/{db}/{table}"
            if table == "events"
            else f"/clickhouse/tables/all/{db}/{table}"
        )
        args = ", ".join([f"'{path}'", "'{replica}'", *filter(None, (engine.group(2) or "()")[1:-1].split(", "))])
        sql = _LOCAL_DEDUP.sub("", sql)
        sql = sql.replace(created.group(0), f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster} (", 1)
        sql = sql.replace(engine.group(0), f") ENGINE = Replicated{engine.group(1)}({args})", 1)
        out.append(sql)
        if table == "events":
            out.append(
                f"CREATE TABLE IF NOT EXISTS {db}.events ON CLUSTER {cluster} AS {db}.events_local\n"
                f"        ENGINE = Distributed({cluster}, {db}, events_local, user_key)"
            )
    return out


def ddl(db: str, cluster: str | None) -> list[str]:
    """What the engine runs at start: the cluster's DDL when a cluster is named, else a single node's."""
    return cluster_statements(db, cluster) if cluster else statements(db)


TABLES = (
    "events",
    "superseded_events",
    "dedup_keys",
    "profiles",
    "group_profiles",
    "identity_map",
    "identity_devices",
    "identity_links",
)
