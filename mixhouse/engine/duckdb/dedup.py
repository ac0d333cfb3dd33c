"""Query-time deduplication, prepared at write time (https://developer.mixpanel.com/reference/event-deduplication).

Events with the same (event, distinct_id, time, $insert_id) collapse to the most recently ingested
copy in every analysis; raw export still returns them all. Rather than a window over every row of
every query, the writer records each older copy in `superseded_events` as a newer one arrives, and
analyses anti-join that small table.

Finding the older copies is a join against every stored event in the batch's time span: a scan that
grows with the store (bench/bench_ingest.py). The writer therefore keeps the keys it has stored in
memory (`SeenKeys`, built from the table when the store opens), and joins only the rows of a batch whose
key is stored already or that come twice in the batch: usually none, and then no join runs. The keys
are 64-bit hashes, held twice: a Bloom filter that answers most keys at once, and, behind it, the exact
set (sorted runs) for the few keys the filter may hold. With the filter alone, its false positives
(~0.1% of keys as it filled) sent almost every 2,000-event batch to the join, and the join reads whole
row groups of the newest events: ~3 ms a batch, ~1.5 µs an event by 600,000 stored events, growing with
the store (bench/bench_writer.py). Now only a real copy (or a 64-bit hash collision,
harmless) is joined. Nothing is ever forgotten (no false negatives), so a row that has an older copy is
always joined.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import numpy as np

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


# The dedup key of a row as one 64-bit hash (DuckDB's hash(): stable within a process, which is all an
# in-memory filter needs; the same column types on both sides, events and the incoming Arrow table).
_KEY_HASH = "hash(project_id, event, distinct_id, time_ms, insert_id)"
BITS_PER_KEY = 16  # blocked Bloom filter, 3 bits in one 64-bit word per key: ~1% false positives at capacity
MIN_CAPACITY = 1 << 20
BUILD_ROWS = 1 << 20


class SeenKeys:
    """The dedup keys in the store (every row with an `$insert_id`) as 64-bit hashes: a blocked Bloom filter
    in front of the exact set. Rows deleted later (GDPR) stay in it: a join that finds nothing, harmless."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(MIN_CAPACITY, capacity)
        self._words = np.zeros(self.capacity * BITS_PER_KEY // 64, np.uint64)
        self._runs: list[np.ndarray[Any, Any]] = []  # sorted, each at least twice the size of the next
        self.count = 0

    @classmethod
    def build(cls, conn: duckdb.DuckDBPyConnection) -> SeenKeys:
        """The keys of every row stored (one scan of the keys; twice their number as the filter's capacity)."""
        stored = int(conn.execute("SELECT count(*) FROM events WHERE insert_id IS NOT NULL").fetchall()[0][0])
        seen = cls(2 * stored)
        reader = conn.sql(f"SELECT {_KEY_HASH} AS h FROM events WHERE insert_id IS NOT NULL").to_arrow_reader(
            BUILD_ROWS
        )
        for batch in reader:
            seen.add(batch.column(0).to_numpy())
        return seen

    def grown(self) -> SeenKeys:
        """The same keys with a filter twice their number in capacity (from the exact set: no scan)."""
        seen = SeenKeys(2 * self.count)
        for run in self._runs:
            seen._fill(run)
        seen._runs = list(self._runs)
        seen.count = self.count
        return seen

    def _slots(self, hashes: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        hashes = hashes.astype(np.uint64, copy=False)
        word = (hashes % np.uint64(len(self._words))).astype(np.int64)
        one = np.uint64(1)
        mask = np.zeros(len(hashes), np.uint64)
        for shift in (40, 46, 52):
            mask |= one << ((hashes >> np.uint64(shift)) & np.uint64(63))
        return word, mask

    def _fill(self, hashes: np.ndarray[Any, Any]) -> None:
        word, mask = self._slots(hashes)
        order = np.argsort(word, kind="stable")
        word, mask = word[order], mask[order]
        starts = np.flatnonzero(np.concatenate(([True], word[1:] != word[:-1])))
        self._words[word[starts]] |= np.bitwise_or.reduceat(mask, starts)

    def add(self, hashes: np.ndarray[Any, Any]) -> None:
        if not len(hashes):
            return
        hashes = hashes.astype(np.uint64, copy=False)
        self._fill(hashes)
        runs = self._runs
        runs.append(np.sort(hashes))
        # Runs of like size are merged (numpy's stable sort merges two sorted runs in one pass): a key is
        # merged about log2(stored / batch) times, and a lookup searches as many runs.
        while len(runs) > 1 and len(runs[-2]) <= 2 * len(runs[-1]):
            newer, older = runs.pop(), runs.pop()
            merged = np.concatenate((older, newer))
            merged.sort(kind="stable")
            runs.append(merged)
        self.count += len(hashes)

    def may_hold(self, hashes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Per key: whether the filter may hold it (False: certainly not stored)."""
        word, mask = self._slots(hashes)
        held: np.ndarray[Any, Any] = (self._words[word] & mask) == mask
        return held

    def holds(self, hashes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Per key: whether it is stored (exact but for 64-bit hash collisions): the filter first, the exact
        set for the few keys it may hold."""
        held = self.may_hold(hashes)
        maybe = np.flatnonzero(held)
        if len(maybe):
            wanted = hashes[maybe].astype(np.uint64, copy=False)
            found = np.zeros(len(wanted), bool)
            for run in self._runs:
                at = np.searchsorted(run, wanted)
                at[at == len(run)] = 0
                found |= run[at] == wanted
            held[maybe] = found
        return held

    @property
    def full(self) -> bool:
        return self.count > self.capacity


# What the insert of a batch returns for `mark_superseded(..., keys=)`: each row's seq, time, key hash and
# whether it has an `$insert_id` (one statement fewer per commit than reading them back).
RETURNED_KEYS = f"seq, time_ms, {_KEY_HASH} AS h, insert_id IS NOT NULL AS keyed"


def mark_superseded(
    conn: duckdb.DuckDBPyConnection,
    incoming: str,
    seen: SeenKeys | None = None,
    keys: Mapping[str, np.ndarray[Any, Any]] | None = None,
) -> SeenKeys | None:
    """Record the rows that the batch `incoming` (a registered table or a subquery; the rows are already
    inserted into events) supersedes.
    Only events with an `$insert_id` can; a batch without any costs nothing here. With `seen` (the keys
    stored before), the join runs only for the rows that may have an older copy: keys stored before, and keys
    that come more than once in the batch; the batch's keys are then added.
    `keys`: the RETURNED_KEYS of the inserted rows, when the insert gave them back (else they are read).
    Returns the keys to use from now on (the filter twice as large once it is over capacity)."""
    if keys is not None:
        keyed = np.asarray(keys["keyed"], dtype=bool)
        rows = {column: np.asarray(keys[column])[keyed] for column in ("seq", "time_ms", "h")}
    else:
        rows = conn.execute(
            f"SELECT seq, time_ms, {_KEY_HASH} AS h FROM {incoming} WHERE insert_id IS NOT NULL"
        ).fetchnumpy()
    if not len(rows["seq"]):
        return seen
    if seen is None:
        low, high = int(rows["time_ms"].min()), int(rows["time_ms"].max())
        conn.execute(_MARK.format(incoming=incoming), {"low": low, "high": high})
        return seen
    hashes = rows["h"]
    maybe = seen.holds(hashes)
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    maybe |= counts[inverse] > 1
    if maybe.any():
        seqs = ", ".join(str(int(seq)) for seq in rows["seq"][maybe])  # integers of our own: no injection
        low, high = int(rows["time_ms"][maybe].min()), int(rows["time_ms"][maybe].max())
        candidates = f"(SELECT * FROM {incoming} WHERE seq IN ({seqs}))"
        conn.execute(_MARK.format(incoming=candidates), {"low": low, "high": high})
    seen.add(hashes)
    return seen.grown() if seen.full else seen


def fill_superseded(conn: duckdb.DuckDBPyConnection) -> None:
    """Once per store, inside the caller's transaction (a migration step): mark the duplicates written
    before the writer kept this table."""
    done = conn.execute("SELECT count(*) FROM engine_meta WHERE key = 'superseded_v1'").fetchall()[0][0]
    if done:
        return
    conn.execute("DELETE FROM superseded_events")
    conn.execute(_BACKFILL)
    conn.execute("INSERT INTO engine_meta VALUES ('superseded_v1', 'done')")
