"""How many stored events carry each property key, per (project, UTC hour, event name): what
`/events/properties/top` counts, kept by the writer so that the endpoint reads a few thousand rows
instead of listing the keys of every event in its range.

The counts are exactly those of a scan of the events table (`unnest(json_keys(properties))` over the rows
in the range): every stored row counts, duplicates that dedup hides included (discovery counts stored
events, as `/events/names` does), keys with or without a slot column alike.

The counts cover the events up to a watermark, `property_counts_through` (a seq); the events after it,
the newest, are counted from their rows by whoever reads:

- the writer does not count per commit. Once `COUNT_EVENTS` events are past the watermark it counts them
  with one `json_keys` scan of their rows (by seq: zone maps, the newest row groups) and moves the
  watermark, in a transaction of its own before the next write (`CountWriter.before_write`); and when
  writes pause (`CountWriter.compact`). (Run beside the write on a connection of its own, it gave no
  measurable rate, and the two together ran a write out of memory under a small MIXHOUSE_MEMORY_LIMIT.) A count that fails (say, out of memory) never fails a write: it
  is tried again later, and readers count the events the watermark does not cover. Counting per commit in Python cost a /track commit of 16 events
  about 2.3 ms of its ~8 ms of CPU, and /import about a microsecond an event under the GIL;
- an /import batch handed over as columns brings its counts, made where it was validated (`KeyCounts`,
  mixhouse/domain/columns.py, often in a worker process). The writer keeps them, with the batch's seqs,
  once the batch has committed (`CountWriter.given`), and the count adds them instead of scanning those
  rows: the scan was about a microsecond an event of the writer's CPU at 100k+ events/s. They are kept
  in memory, for committed batches only: after a restart, or once a deletion is coming (`forget_given`),
  the rows are scanned;
- a reader adds the events past the watermark, counted from their rows, in the same statement (one
  snapshot: the watermark and the counts always agree);
- a deletion (GDPR, or events by `$insert_id`) subtracts the counts of the rows it deletes that the
  counts cover (seq up to the watermark), in its own transaction, before deleting them (`subtract`);
- a killed server loses nothing: the watermark commits with the counts it covers;
- a store written before the counts existed gets them built from its rows by a versioned upgrade step
  (`rebuild`, migrations.py), in one transaction: a killed upgrade is rolled back and runs again.

Adding to a table keyed on (project, hour, event, name) costs an upsert; appending the counts to
`property_counts_recent` costs a quarter of that. So counts are appended there, and the recent rows are
folded into `property_counts` (summed, upserted) once `COMPACT_ROWS` of them have piled up, or when writes
pause. Readers sum both.

A range that starts or ends inside an hour (a project timezone whose offset is not whole hours, such as
Asia/Kolkata at +05:30) reads the whole hours between from the counts and scans only its partial hours'
events, so every range is exact.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

import duckdb
import pyarrow as pa

from mixhouse.domain.columns import KeyCounts
from mixhouse.domain.query.events import PropertyNamesSpec
from mixhouse.engine.duckdb.printer import quote

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
# Appended rows folded into property_counts within a write once there are this many (a fold of 100k rows
# takes about 0.1 s on the writer; a reader sums at most this many unfolded rows).
COMPACT_ROWS = 100_000
# Events past the watermark that the writer counts at once, in the commit that gets there. A reader scans
# at most this many (plus one commit's) events' keys for the counts' newest part: a few milliseconds.
COUNT_EVENTS = 20_000
# Given counts kept for at most this many events (counts that keep failing are not held without end: past
# it they are dropped and those rows are scanned).
GIVEN_EVENTS = 8 * COUNT_EVENTS
THROUGH_SQL = "(SELECT coalesce(max(seq), 0) FROM property_counts_through)"


def hour_sql(time_ms: str) -> str:
    """floor(time_ms / 3600000) in integers (DuckDB's `//` and `%` truncate towards zero)."""
    return f"(({time_ms}) - ((({time_ms}) % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS}) // {HOUR_MS}"


def _counts_sql(rows: str, sign: int = 1) -> str:
    """Counts (project_id, hour, event, name, n) of the events relation `rows`, times `sign`. The rows are
    grouped on their list of keys first (most events of an hour and name share one), and only the groups'
    lists are unnested: half the work of unnesting every row's keys (bench/bench_ingest.py)."""
    return f"""SELECT project_id, hour, event, name, CAST(sum(n) AS BIGINT) AS n
               FROM (SELECT project_id, hour, event, unnest(keys) AS name, n
                     FROM (SELECT project_id, {hour_sql("time_ms")} AS hour, event, json_keys(properties) AS keys,
                                  {sign} * count(*) AS n
                           FROM {rows} GROUP BY ALL))
               GROUP BY ALL"""


class CountWriter:
    """The writer's side: counts the events past the watermark now and then, folds the counts in."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._recent = 0
        self._through = 0
        self._retry_at = 0  # after a failed count: the seq from which to try again
        # Counts of committed events past the watermark made where their batch was validated: (first seq,
        # last seq, the counts of the events with those seqs).
        self._given: list[tuple[int, int, pa.Table]] = []
        self.reload(conn)

    def reload(self, conn: duckdb.DuckDBPyConnection) -> None:
        """What is committed (also after a write transaction was rolled back)."""
        (row,) = conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()
        self._recent = int(row[0])
        (row,) = conn.execute(f"SELECT {THROUGH_SQL}").fetchall()
        self._through = int(row[0])

    def given(self, project_id: int, first_seq: int, counts: KeyCounts, events: int) -> None:
        """After a commit: the counts of its `events` events with seqs from `first_seq`, all of project
        `project_id`, counted when they were validated."""
        if sum(last - first + 1 for first, last, _ in self._given) + events > GIVEN_EVENTS:
            self.forget_given()
            return
        table = pa.table(
            {
                "project_id": pa.repeat(pa.scalar(project_id, pa.int64()), len(counts.n)),
                "hour": counts.hour,
                "event": counts.event,
                "name": counts.name,
                "n": counts.n,
            }
        )
        self._given.append((first_seq, first_seq + events - 1, table))

    def forget_given(self) -> None:
        """Before rows are deleted (the counts given for them would count rows no longer there), or when the
        counts given are in doubt: those rows are scanned instead."""
        self._given.clear()

    def due(self, last_seq: int) -> bool:
        """Whether COUNT_EVENTS events are past the watermark (`last_seq`: the last seq committed), and no
        failed count asks to wait."""
        return last_seq - self._through >= COUNT_EVENTS and last_seq >= self._retry_at

    def before_write(self, conn: duckdb.DuckDBPyConnection, last_seq: int) -> None:
        """On the writer, before a write's transaction: once `due`, count the events up to `last_seq` and
        move the watermark, in a transaction of its own. A count that fails (memory, disk) is logged and
        tried again COUNT_EVENTS events later: the write goes on, and readers count what the watermark does
        not cover. Never raises (the write must not fail for it)."""
        if not self.due(last_seq):
            return
        try:
            self._count(conn, last_seq, fold_all=False)
        except Exception as exc:
            self._retry_at = last_seq + COUNT_EVENTS
            log.warning("counting property keys failed, will retry later: %s", str(exc).splitlines()[0][:300])

    def compact(self, conn: duckdb.DuckDBPyConnection, last_seq: int) -> None:
        """When writes pause: count the events past the watermark and fold the recent rows in, in a
        transaction of its own."""
        (row,) = conn.execute("SELECT count(*) FROM property_counts_recent").fetchall()
        if not row[0] and last_seq <= self._through:
            self._recent = 0
            return
        self._count(conn, last_seq, fold_all=True)

    def _count(self, conn: duckdb.DuckDBPyConnection, last_seq: int, *, fold_all: bool) -> None:
        conn.execute("BEGIN TRANSACTION")
        try:
            recent = self._recent
            if last_seq > self._through:
                # (An INSERT answers the number of rows it added: no RETURNING rows to carry into Python.)
                ((added,),) = conn.execute(
                    f"INSERT INTO property_counts_recent {self._new_counts(conn, last_seq)}"
                ).fetchall()
                _set_through(conn, last_seq)
                recent += int(added)
            if fold_all or recent >= COMPACT_ROWS:
                fold(conn)
                recent = 0
            conn.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.Error):
                conn.execute("ROLLBACK")
                self.reload(conn)
            raise
        finally:
            with suppress(duckdb.Error):
                conn.unregister("given_counts")
        self._through = max(self._through, last_seq)
        self._recent = recent
        self._retry_at = 0
        self.forget_given()

    def _new_counts(self, conn: duckdb.DuckDBPyConnection, last_seq: int) -> str:
        """SQL of the counts of the events in (watermark, `last_seq`]: those given (registered as
        `given_counts`, which `_count` unregisters), and a scan of the rest."""
        through = int(self._through)
        given = [(first, last, table) for first, last, table in self._given if first > through and last <= last_seq]
        if not given:
            return _counts_sql(f"(SELECT * FROM events WHERE seq > {through} AND seq <= {int(last_seq)})")
        spans: list[list[int]] = []
        for first, last, _ in sorted(given, key=lambda g: g[0]):
            if spans and spans[-1][1] + 1 == first:
                spans[-1][1] = last
            else:
                spans.append([first, last])
        gaps = [
            (lo, hi)
            for lo, hi in zip(
                [through + 1] + [b + 1 for _, b in spans], [a - 1 for a, _ in spans] + [int(last_seq)], strict=True
            )
            if lo <= hi
        ]
        conn.register("given_counts", pa.concat_tables([table for _, _, table in given]))
        parts = ["SELECT project_id, hour, event, name, n FROM given_counts"]
        if gaps:
            within = " OR ".join(f"seq BETWEEN {lo} AND {hi}" for lo, hi in gaps)
            parts.append(
                _counts_sql(f"(SELECT * FROM events WHERE seq > {through} AND seq <= {int(last_seq)} AND ({within}))")
            )
        return f"""SELECT project_id, hour, event, name, CAST(sum(n) AS BIGINT) AS n
                   FROM ({" UNION ALL ".join(parts)}) GROUP BY ALL"""


def _set_through(conn: duckdb.DuckDBPyConnection, seq: int) -> None:
    conn.execute("DELETE FROM property_counts_through")
    conn.execute("INSERT INTO property_counts_through VALUES (?)", [int(seq)])


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
    matching `where` (SQL over the events table, with `params`) that the counts cover (the rest were never
    counted)."""
    rows = f"(SELECT * FROM events WHERE ({where}) AND seq <= {THROUGH_SQL})"
    conn.execute(f"INSERT INTO property_counts_recent {_counts_sql(rows, -1)}", params)


def rebuild(conn: duckdb.DuckDBPyConnection) -> None:
    """The counts of every stored event, from scratch (inside the caller's transaction)."""
    conn.execute("DELETE FROM property_counts_recent")
    conn.execute("DELETE FROM property_counts")
    conn.execute(f"INSERT INTO property_counts {_counts_sql('events')}")
    (row,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()
    _set_through(conn, int(row[0]))


def cover_all(conn: duckdb.DuckDBPyConnection) -> None:
    """The upgrade of a store whose writer counted every commit (version 3): its counts cover every event."""
    (row,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()
    _set_through(conn, int(row[0]))


def property_names(conn: duckdb.DuckDBPyConnection, spec: PropertyNamesSpec) -> list[tuple[str, int]]:
    """`/events/properties/top`: the whole hours of the range from the counts and, for the events past
    their watermark, from those events; a partial hour at either end from the events themselves; in one
    statement (one snapshot)."""
    first_hour = -(-spec.start_ms // HOUR_MS)  # the first hour starting at or after the range's start
    end_hour = spec.end_ms // HOUR_MS  # the hours before this one end by the range's end
    if spec.events is None:
        event_filter = "TRUE"
    else:
        event_filter = f"event IN ({', '.join(quote(name) for name in spec.events)})" if spec.events else "FALSE"
    params: dict[str, Any] = {"project": spec.project_id, "limit": spec.limit, "hidden": list(spec.hidden)}
    parts = []
    if first_hour < end_hour:
        params.update(first=first_hour, end=end_hour, first_ms=first_hour * HOUR_MS, end_ms=end_hour * HOUR_MS)
        for table in ("property_counts", "property_counts_recent"):
            parts.append(
                f"""SELECT name, n FROM {table}
                    WHERE project_id = $project AND hour >= $first AND hour < $end AND {event_filter}"""
            )
        parts.append(
            f"""SELECT unnest(json_keys(properties)) AS name, 1 AS n FROM events
                WHERE seq > {THROUGH_SQL} AND project_id = $project
                  AND time_ms >= $first_ms AND time_ms < $end_ms AND {event_filter}"""
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
