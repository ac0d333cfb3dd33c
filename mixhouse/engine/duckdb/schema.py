"""Tables of the embedded DuckDB engine.

Events keep their fixed fields as columns (what every query filters or groups on) and every other
property in one JSON object, exactly as it is exported. `time` and `distinct_id` are *not* inside
`properties`: they live in `time_ms` and `distinct_id` and are put back when a row is exported, so
that the expression language can map `properties["time"]`, `properties["$time"]`, `event["$time"]`
and `properties["$distinct_id"]` onto the columns.
"""

import duckdb

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS event_seq;

CREATE TABLE IF NOT EXISTS events (
    project_id  BIGINT  NOT NULL,
    seq         BIGINT  NOT NULL,   -- ingestion order: dedup keeps the highest seq of a key
    time_ms     BIGINT  NOT NULL,   -- UTC epoch milliseconds
    event       VARCHAR NOT NULL,
    distinct_id VARCHAR NOT NULL,
    insert_id   VARCHAR,            -- NULL when the sender gave none (such rows never collapse)
    properties  JSON    NOT NULL,   -- all other properties, as sent and enriched at ingestion
    user_key    UBIGINT             -- user_key(distinct_id): analyses group users on it, not on the text
);

CREATE TABLE IF NOT EXISTS profiles (
    project_id  BIGINT  NOT NULL,
    distinct_id VARCHAR NOT NULL,
    properties  JSON    NOT NULL,   -- "$last_seen" etc. included, as /engage returns them
    updated_ms  BIGINT  NOT NULL,
    PRIMARY KEY (project_id, distinct_id)
);

CREATE TABLE IF NOT EXISTS group_profiles (
    project_id  BIGINT  NOT NULL,
    group_key   VARCHAR NOT NULL,
    group_id    VARCHAR NOT NULL,
    properties  JSON    NOT NULL,
    updated_ms  BIGINT  NOT NULL,
    PRIMARY KEY (project_id, group_key, group_id)
);

-- Identity: every distinct id that belongs to a cluster points at the cluster's canonical id.
-- Ids absent from the map are their own canonical id. Queries resolve with a join on this table.
CREATE TABLE IF NOT EXISTS identity_map (
    project_id    BIGINT  NOT NULL,
    distinct_id   VARCHAR NOT NULL,
    canonical_id  VARCHAR NOT NULL,
    distinct_key  UBIGINT,           -- user_key(distinct_id), user_key(canonical_id): per-user scans
    canonical_key UBIGINT,           -- resolve on keys without hashing the ids again
    PRIMARY KEY (project_id, distinct_id)
);

-- Simplified ID Merge: the winning link of each device, i.e. its earliest event carrying both $device_id and
-- $user_id (event time, then user id). identity_map holds '$device:<id>' -> user for each row.
CREATE TABLE IF NOT EXISTS identity_devices (
    project_id         BIGINT  NOT NULL,
    device_distinct_id VARCHAR NOT NULL,   -- '$device:<id>'
    user_id            VARCHAR NOT NULL,
    time_ms            BIGINT  NOT NULL,
    PRIMARY KEY (project_id, device_distinct_id)
);

-- Original ID Merge: every $identify / $create_alias / $merge link received, failed ones included (a
-- backdated link can change the event-time replay that identity_map is computed from).
CREATE TABLE IF NOT EXISTS identity_links (
    project_id  BIGINT  NOT NULL,
    kind        VARCHAR NOT NULL,   -- '$identify' | '$create_alias' | '$merge'
    time_ms     BIGINT  NOT NULL,
    primary_id  VARCHAR NOT NULL,   -- the side whose cluster keeps its canonical id
    other_id    VARCHAR NOT NULL
);

-- Rows hidden from analyses because a later-ingested copy has the same dedup key (event,
-- distinct_id, time, $insert_id; https://developer.mixpanel.com/reference/event-deduplication). Filled by the writer as copies arrive, so queries
-- collapse duplicates with an anti-join on this (small) table instead of a window over every row.
CREATE TABLE IF NOT EXISTS superseded_events (
    project_id BIGINT NOT NULL,
    seq        BIGINT NOT NULL
);

-- How many stored events carry each property key, per project, UTC hour and event name; kept by the
-- writer (property_counts.py).
CREATE TABLE IF NOT EXISTS property_counts (
    project_id BIGINT  NOT NULL,
    hour       BIGINT  NOT NULL,   -- floor(time_ms / 3600000): the UTC hour of the events
    event      VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,   -- a property key
    n          BIGINT  NOT NULL,   -- stored events of that hour and name carrying the key
    PRIMARY KEY (project_id, hour, event, name)
);

-- Counts added since the last fold into property_counts (negative for deleted rows); same columns.
CREATE TABLE IF NOT EXISTS property_counts_recent (
    project_id BIGINT  NOT NULL,
    hour       BIGINT  NOT NULL,
    event      VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    n          BIGINT  NOT NULL
);

-- One row at most: the events with seq up to this one are in the counts above; later ones are counted
-- from the events themselves until the writer counts them (none: nothing is counted yet).
CREATE TABLE IF NOT EXISTS property_counts_through (
    seq BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS engine_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
"""


def user_key_sql(distinct_id: str) -> str:
    """The 64-bit key of a distinct id, as SQL: the top half of its MD5 (stable across DuckDB versions,
    unlike hash()). Per-user scans group on this integer instead of reading and hashing the text; two
    different ids share a key with probability about n^2 / 2^65 for n ids (1 in 37 million for a
    million users)."""
    return f"CAST(md5_number({distinct_id}) >> 64 AS UBIGINT)"


def add_user_keys(conn: duckdb.DuckDBPyConnection) -> None:
    """Data dirs written before the key columns existed (or rows written without them): add the
    columns and fill what is missing."""
    for table, column, source in (
        ("events", "user_key", "distinct_id"),
        ("identity_map", "distinct_key", "distinct_id"),
        ("identity_map", "canonical_key", "canonical_id"),
    ):
        have = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = ?", [table, column]
        ).fetchall()[0][0]
        if not have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} UBIGINT")
        conn.execute(f"UPDATE {table} SET {column} = {user_key_sql(source)} WHERE {column} IS NULL")
