"""How many stored events carry each property key, per (project, UTC hour, event name): what
`/events/properties/top` counts, kept by the writer so that the endpoint reads a few thousand rows
instead of listing the keys of every event in its range.

The counts are exactly those of a scan of the events table (`unnest(json_keys(properties))` over the rows
in the range): every stored row counts, duplicates that dedup hides included (discovery counts stored
events, as `/events/names` does), keys with or without a slot column alike. So they change exactly when
rows of the events table do:

- the writer adds each batch's counts in the transaction that inserts its rows (`CountWriter.record`);
- a deletion (GDPR, or events by `$insert_id`) subtracts the counts of the rows it deletes, in its own
  transaction, before deleting them (`subtract`);
- a store written before the counts existed gets them built from its rows by a versioned upgrade step
  (`rebuild`, migrations.py), in one transaction: a killed upgrade is rolled back and runs again.

Adding to a table keyed on (project, hour, event, name) in every write costs an upsert (about 1 ms a
commit here); appending the batch's rows to `property_counts_recent` costs a quarter of that. So writes
append there, and the recent rows are folded into `property_counts` (summed, upserted) once
`COMPACT_ROWS` of them have piled up, or when writes pause (`CountWriter.compact`). Readers sum both.

A range that starts or ends inside an hour (a project timezone whose offset is not whole hours, such as
Asia/Kolkata at +05:30) reads the whole hours between from the counts and scans only its partial hours'
events, so every range is exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.query.events import PropertyNamesSpec
from mixhouse.engine.duckdb.printer import quote

HOUR_MS = 3_600_000
# Appended rows folded into property_counts within a write once there are this many (a fold of 100k rows
# takes about 0.1 s on the writer; a reader sums at most this many unfolded rows).
COMPACT_ROWS = 100_000


def hour_sql(time_ms: str) -> str:
    """floor(time_ms / 3600000) in integers (DuckDB's `//` and `%` truncate towards zero)."""
    return f"(({time_ms}) - ((({time_ms}) % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS}) // {HOUR_MS}"


def _counts_sql(rows: str, sign: int = 1) -> str:
    """Counts (project_id, hour, event, name, n) of the events relation `rows`, times `sign`."""
    return f"""SELECT project_id, {hour_sql("time_ms")} AS hour, event, name, {sign} * count(*) AS n
               FROM (SELECT project_id, time_ms, event, unnest(json_keys(properties)) AS name FROM {rows})
               GROUP BY ALL"""


class CountWriter:
    """The writer's side: appends each batch's counts, folds them in from time to time."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        (row,) = conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()
        self._recent = int(row[0])

    def record(
        self,
        conn: duckdb.DuckDBPyConnection,
        events: Sequence[StoredEvent],
        documents: Sequence[dict[str, Any]] | None,
        inserted: str,
    ) -> None:
        """Inside the write transaction, after the insert: the counts of `events`, the rows just inserted,
        from their parsed properties `documents` (or, when None, from `inserted`, SQL of those rows)."""
        if documents is None:
            added = conn.execute(f"INSERT INTO property_counts_recent {_counts_sql(inserted)} RETURNING 1").fetchall()
            self._recent += len(added)
        else:
            # Events of one name mostly carry the same keys: count each key set once per (hour, event).
            shapes: Counter[tuple[int, int, str, tuple[str, ...]]] = Counter()
            for e, doc in zip(events, documents, strict=True):
                shapes[(e.project_id, e.time_ms // HOUR_MS, e.event, tuple(doc))] += 1
            counts: Counter[tuple[int, int, str, str]] = Counter()
            for (project, hour, event, keys), n in shapes.items():
                for key in keys:
                    counts[(project, hour, event, key)] += n
            if not counts:
                return
            table = pa.table(
                {
                    "project_id": pa.array([k[0] for k in counts], pa.int64()),
                    "hour": pa.array([k[1] for k in counts], pa.int64()),
                    "event": pa.array([k[2] for k in counts], pa.string()),
                    "name": pa.array([k[3] for k in counts], pa.string()),
                    "n": pa.array(list(counts.values()), pa.int64()),
                }
            )
            conn.register("incoming_property_counts", table)
            try:
                conn.execute("INSERT INTO property_counts_recent SELECT * FROM incoming_property_counts")
            finally:
                conn.unregister("incoming_property_counts")
            self._recent += len(counts)
        if self._recent >= COMPACT_ROWS:
            fold(conn)
            self._recent = 0

    def compact(self, conn: duckdb.DuckDBPyConnection) -> None:
        """When writes pause: fold the recent rows in, in a transaction of its own."""
        (row,) = conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()
        if not row[0]:
            self._recent = 0
            return
        conn.execute("BEGIN TRANSACTION")
        try:
            fold(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._recent = 0


def fold(conn: duckdb.DuckDBPyConnection) -> None:
    """Sum the recent rows into property_counts and empty them (inside the caller's transaction); rows
    that reach zero are dropped."""
    conn.execute(
        """INSERT INTO property_counts
           SELECT project_id, hour, event, name, sum(n) FROM property_counts_recent GROUP BY ALL
           ON CONFLICT DO UPDATE SET n = n + excluded.n"""
    )
    conn.execute("DELETE FROM property_counts_recent")
    conn.execute("DELETE FROM property_counts WHERE n = 0")


def subtract(conn: duckdb.DuckDBPyConnection, where: str, params: dict[str, Any]) -> None:
    """Inside a deletion's transaction, before its DELETE: take away the counts of the event rows
    matching `where` (SQL over the events table, with `params`)."""
    conn.execute(
        f"INSERT INTO property_counts_recent {_counts_sql(f'(SELECT * FROM events WHERE {where})', -1)}", params
    )


def rebuild(conn: duckdb.DuckDBPyConnection) -> None:
    """The counts of every stored event, from scratch (inside the caller's transaction)."""
    conn.execute("DELETE FROM property_counts_recent")
    conn.execute("DELETE FROM property_counts")
    conn.execute(f"INSERT INTO property_counts {_counts_sql('events')}")


def property_names(conn: duckdb.DuckDBPyConnection, spec: PropertyNamesSpec) -> list[tuple[str, int]]:
    """`/events/properties/top`: the whole hours of the range from the counts, a partial hour at either
    end from the events themselves, in one statement (one snapshot)."""
    first_hour = -(-spec.start_ms // HOUR_MS)  # the first hour starting at or after the range's start
    end_hour = spec.end_ms // HOUR_MS  # the hours before this one end by the range's end
    if spec.events is None:
        event_filter = "TRUE"
    else:
        event_filter = f"event IN ({', '.join(quote(name) for name in spec.events)})" if spec.events else "FALSE"
    params: dict[str, Any] = {"project": spec.project_id, "limit": spec.limit, "hidden": list(spec.hidden)}
    parts = []
    if first_hour < end_hour:
        params.update(first=first_hour, end=end_hour)
        for table in ("property_counts", "property_counts_recent"):
            parts.append(
                f"""SELECT name, n FROM {table}
                    WHERE project_id = $project AND hour >= $first AND hour < $end AND {event_filter}"""
            )
        edges = [(spec.start_ms, first_hour * HOUR_MS), (end_hour * HOUR_MS, spec.end_ms)]
    else:
        edges = [(spec.start_ms, spec.end_ms)]
    spans = [(lo, hi) for lo, hi in edges if lo < hi]
    if spans:
        within = " OR ".join(f"(time_ms >= {int(lo)} AND time_ms < {int(hi)})" for lo, hi in spans)
        parts.append(
            f"""SELECT unnest(json_keys(properties)) AS name, 1 AS n FROM events
                WHERE project_id = $project AND ({within}) AND {event_filter}"""
        )
    if not parts:
        return []
    sql = f"""
        SELECT name, sum(n) AS total FROM ({" UNION ALL ".join(parts)})
        WHERE NOT list_contains(CAST($hidden AS VARCHAR[]), name)
        GROUP BY name HAVING sum(n) > 0 ORDER BY total DESC, name LIMIT $limit
    """
    return [(str(r[0]), int(r[1])) for r in conn.execute(sql, params).fetchall()]
