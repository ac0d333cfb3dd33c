"""A scan: the records of one project as a stream of Arrow batches, for readers that need rows rather than
an analysis (JQL, pipelines, exports to object stores, GDPR retrievals).

Events come deduplicated (`$insert_id`) and identity-resolved, as every report sees them; the filter is an
expression tree the engine compiles, so the store (not the reader) drops what does not match."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from mixhouse.expr.plan import EventExpr

EVENT_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("distinct_id", pa.string()),  # the resolved (canonical) id
        ("time", pa.int64()),  # epoch milliseconds
        ("insert_id", pa.string()),
        ("properties", pa.string()),  # a JSON object, as stored
    ]
)
PROFILE_SCHEMA = pa.schema([("distinct_id", pa.string()), ("properties", pa.string())])


@dataclass(frozen=True)
class ScanQuery:
    """kind      "events" or "profiles" (user profiles)
    from_ms, to_ms  events with from_ms <= time < to_ms (None: unbounded); ignored for profiles
    events    event names to keep (None: all)
    where     a filter over each event (or profile); user["..."] in an event filter reads the profile
    order     "time": events by time (then ingestion order); "user": by resolved distinct_id, then time
              (each user's events contiguous and time-ordered); profiles are always by distinct_id
    resolve_identity  False: ids as sent (no identity merge)
    batch_rows  the largest batch yielded
    """

    project_id: int
    kind: Literal["events", "profiles"] = "events"
    from_ms: int | None = None
    to_ms: int | None = None
    events: tuple[str, ...] | None = None
    where: EventExpr | None = None
    order: Literal["time", "user"] = "time"
    resolve_identity: bool = True
    batch_rows: int = 10_000

    @property
    def schema(self) -> pa.Schema:
        return EVENT_SCHEMA if self.kind == "events" else PROFILE_SCHEMA


_HOUR_MS = 3_600_000


def windows(hour_counts: list[tuple[int, int]], start_ms: int, end_ms: int, max_rows: int) -> list[tuple[int, int]]:
    """Back-to-back [start, end) spans covering [start_ms, end_ms), each holding at most `max_rows` rows
    unless one hour alone holds more (hour_counts: (epoch hour, rows), ascending)."""
    splits: list[int] = []
    rows = 0
    for hour, n in hour_counts:
        if rows and rows + n > max_rows:
            splits.append(max(hour * _HOUR_MS, start_ms))
            rows = 0
        rows += n
    return list(itertools.pairwise([start_ms, *splits, end_ms]))
