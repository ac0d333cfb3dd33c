"""Query-time deduplication, prepared at write time (https://developer.mixpanel.com/reference/event-deduplication).

Events with the same (event, distinct_id, time, $insert_id) collapse to the most recently ingested
copy in every analysis; raw export still returns them all. Rather than a window over every row of
every query, the writer records each older copy in `superseded_events` as a newer one arrives, and
analyses anti-join that small table.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from mixhouse.domain.events import StoredEvent

# Older copies of the keys in `incoming` (already inserted into events). The time bounds let DuckDB
# skip row groups outside the batch's time span; the seq comparison also catches copies within the batch.
_MARK = """
INSERT INTO superseded_events
SELECT DISTINCT e.project_id, e.seq
FROM events e
JOIN {incoming} i
  ON e.project_id = i.project_id AND e.insert_id = i.insert_id AND e.time_ms = i.time_ms
 AND e.event = i.event AND e.distinct_id = i.distinct_id AND e.seq < i.seq
WHERE i.insert_id IS NOT NULL AND e.insert_id IS NOT NULL
  AND e.time_ms BETWEEN $low AND $high
  AND e.seq NOT IN (SELECT seq FROM superseded_events)
"""

_BACKFILL = """
INSERT INTO superseded_events
SELECT project_id, seq FROM events
WHERE insert_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY project_id, event, distinct_id, time_ms, insert_id ORDER BY seq DESC) > 1
"""


def mark_superseded(conn: duckdb.DuckDBPyConnection, incoming: str, events: Sequence[StoredEvent]) -> None:
    """Record the rows that `events` (registered as the relation `incoming`) supersede. Only events
    with an `$insert_id` can; a batch without any costs nothing here."""
    times = [e.time_ms for e in events if e.insert_id is not None]
    if times:
        conn.execute(_MARK.format(incoming=incoming), {"low": min(times), "high": max(times)})


def fill_superseded(conn: duckdb.DuckDBPyConnection) -> None:
    """Once per store, inside the caller's transaction (a migration step): mark the duplicates written
    before the writer kept this table."""
    done = conn.execute("SELECT count(*) FROM engine_meta WHERE key = 'superseded_v1'").fetchall()[0][0]
    if done:
        return
    conn.execute("DELETE FROM superseded_events")
    conn.execute(_BACKFILL)
    conn.execute("INSERT INTO engine_meta VALUES ('superseded_v1', 'done')")
