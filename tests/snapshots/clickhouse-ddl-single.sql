CREATE TABLE IF NOT EXISTS mixhouse.events (
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
        SETTINGS non_replicated_deduplication_window = 1000, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.superseded_events (
            project_id Int64,
            seq        Int64
        ) ENGINE = ReplacingMergeTree ORDER BY (project_id, seq)
        SETTINGS non_replicated_deduplication_window = 1000, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.dedup_keys (
            project_id Int64,
            key_hash   UInt64                -- dedup.KEY_HASH of an event's (event, distinct_id, time, $insert_id)
        ) ENGINE = MergeTree ORDER BY (project_id, key_hash)
        SETTINGS index_granularity = 256, min_compress_block_size = 4096, max_compress_block_size = 8192,
            non_replicated_deduplication_window = 1000, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.profiles (
            project_id  Int64,
            distinct_id String,
            properties  String,
            updated_ms  Int64,
            version     UInt64,
            deleted     UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, distinct_id)
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.group_profiles (
            project_id  Int64,
            group_key   String,
            group_id    String,
            properties  String,
            updated_ms  Int64,
            version     UInt64,
            deleted     UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, group_key, group_id)
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.identity_map (
            project_id    Int64,
            distinct_id   String,
            canonical_id  String,
            distinct_key  UInt64 DEFAULT sipHash64(distinct_id),
            canonical_key UInt64 DEFAULT sipHash64(canonical_id),
            version       UInt64,
            deleted       UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, distinct_id)
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.identity_devices (
            project_id         Int64,
            device_distinct_id String,
            user_id            String,
            time_ms            Int64,
            version            UInt64,
            deleted            UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, device_distinct_id)
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.identity_links (
            project_id Int64,
            kind       String,
            time_ms    Int64,
            primary_id String,
            other_id   String,
            version    UInt64,
            deleted    UInt8
        ) ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (project_id, primary_id, other_id, kind, time_ms)
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.engage_lists (
            project_id  Int64,
            session_id  String,
            list_id     String,
            distinct_id String,
            created_ms  Int64
        ) ENGINE = MergeTree ORDER BY (project_id, session_id, list_id, distinct_id)
        TTL toDateTime(intDiv(created_ms, 1000)) + INTERVAL 1 DAY
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS mixhouse.engage_sessions (
            project_id Int64,
            session_id String,
            query_key  String,
            list_id    String,
            total      UInt64,
            created_ms Int64
        ) ENGINE = MergeTree ORDER BY (project_id, session_id, query_key)
        TTL toDateTime(intDiv(created_ms, 1000)) + INTERVAL 1 DAY
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

