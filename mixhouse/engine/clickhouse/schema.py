"""Tables of the ClickHouse engine (single node: chDB, or one ClickHouse server).

Events are a MergeTree ordered by (project, user key, time) and partitioned by month, so that one
project's per-user scans read contiguous ranges and a time range prunes whole partitions. Profiles, group
profiles and the identity map are ReplacingMergeTrees: a write inserts a new version of a key's row and
reads take the latest (`FINAL`); a deletion is a version with `deleted = 1`. Properties are kept as the
JSON text they are exported as (a String column), exactly as the embedded engine keeps them.

Durability: `fsync_after_insert` and `fsync_part_directory` make an INSERT return only once its part is
on disk, so an acknowledged write survives a crash; `non_replicated_deduplication_window` lets a retried
insert with the same `insert_deduplication_token` be stored once on a single node (replicated tables
deduplicate by default). docs/scale-out.md has the cluster (Replicated + Distributed) variant.
"""

from __future__ import annotations

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
    ]


TABLES = (
    "events",
    "superseded_events",
    "profiles",
    "group_profiles",
    "identity_map",
    "identity_devices",
    "identity_links",
)
