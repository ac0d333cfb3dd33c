"""An /import batch as columns, made where the batch is validated (possibly another process, mixhouse/workers).

A batch of plain events (what `events.plain_batch` takes: one project, flat properties, nothing to
locate or merge) is handed to the store as Arrow arrays rather than 2,000 StoredEvents: the fixed fields,
the stored properties as JSON, and each property's values split by kind (`split_values`), which a store
that keeps hot properties as typed columns (the DuckDB engine's slots, docs/storage.md) inserts as they
are. Arrow arrays cross a process boundary as their buffers, so the process that writes spends no
per-event Python work on them.

`import_columns` is the whole path from a request body to columns; it answers None whenever the batch is
not plain or not even a batch (bad JSON, too many events), and the caller then takes the ordinary path,
which decides and reports exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from mixhouse.domain import events as ev
from mixhouse.domain import payloads
from mixhouse.domain.project import Project


class Missing:
    """A key the event does not have."""


MISSING = Missing()
_PLAIN = frozenset({str, int, float, Missing})

# A property's values over a batch split by kind: (strings, numbers, other JSON texts), a column None when
# no event holds a value of its kind.
Split = tuple[list[str | None] | None, list[float | None] | None, list[str | None] | None]


def split_values(values: list[Any]) -> Split | None:
    """(strings, numbers, others) of one key's values over a batch (`MISSING` where an event lacks the key),
    each as `split_value` gives it row by row, or None for a column no row has a value in (None for all
    three: no event has the key). Most keys hold one kind of value across a batch: a list of strings is the
    strings column as it is, numbers are floated in one pass, and the columns no row needs are never built."""
    kinds = set(map(type, values))
    every = Missing not in kinds  # every event has the key
    kinds.discard(Missing)
    if not kinds:
        return None
    if kinds == {str} and every:
        return values, None, None
    ps = [v if type(v) is str else None for v in values] if str in kinds else None
    pn: list[float | None] | None = None
    if every and kinds <= {int, float}:
        try:
            pn = list(map(float, values))
        except OverflowError:  # an integer past a double's range: the row by row path below
            pn = None
    if pn is None and (int in kinds or float in kinds):
        pn = [float(v) if type(v) is float else _number(v) if type(v) is int else None for v in values]
    po = None if kinds <= _PLAIN else [None if type(v) in _PLAIN else _other(v) for v in values]
    return ps, pn, po


def _number(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer past a double's range: a cast of its JSON text gives infinity
        return math.inf if value > 0 else -math.inf


def _other(value: Any) -> str:
    """The JSON text of true, false, null, a list or an object."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return orjson.dumps(value).decode()


def split_value(value: Any) -> tuple[str | None, float | None, str | None]:
    """(string, number, other) of a parsed JSON value: a string; a number (a boolean is not one) as a double;
    anything else (true, false, null, a list, an object) as its JSON text, as orjson writes it."""
    if isinstance(value, str):
        return value, None, None
    if isinstance(value, bool):
        return None, None, "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return None, float(value), None
        except OverflowError:  # an integer past a double's range: a cast of its JSON text gives infinity
            return None, math.inf if value > 0 else -math.inf, None
    if value is None:
        return None, None, "null"
    return None, None, orjson.dumps(value).decode()


KindArrays = tuple[pa.Array | None, pa.Array | None, pa.Array | None]

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class KeyCounts:
    """How many events of each (UTC hour, event name) carry each top-level key of their stored properties
    document, server-added keys included: what a store that keeps per-hour key counts (the DuckDB engine's
    property counts) adds for the batch, counted where the batch is validated instead of from its stored
    JSON. Only the (hour, event, name) rows with a count above zero."""

    hour: pa.Array  # int64: floor(time_ms / 3600000)
    event: pa.Array  # string
    name: pa.Array  # string
    n: pa.Array  # int64


@dataclass(frozen=True)
class EventColumns:
    """The events of one plain batch of one project, in order, as columns."""

    project_id: int
    time_ms: pa.Array  # int64, UTC epoch milliseconds
    event: pa.Array  # string
    distinct_id: pa.Array  # string
    insert_id: pa.Array  # string, null where the event has none
    properties: pa.Array  # binary: each event's stored properties as a JSON object (UTF-8, as orjson wrote it)
    # Every property key of the batch but those the server adds (SERVER_ADDED), its values split by kind.
    by_key: dict[str, KindArrays]
    counts: dict[str, int]  # of each key in by_key: how many events carry it
    key_counts: KeyCounts

    def __len__(self) -> int:
        return len(self.time_ms)

    def stored_events(self) -> list[ev.StoredEvent]:
        """The same events as rows (for a store that takes rows; the properties parsed again when read)."""
        return list(
            map(
                ev.StoredEvent,
                repeat(self.project_id),
                self.time_ms.to_pylist(),
                self.event.to_pylist(),
                self.distinct_id.to_pylist(),
                self.insert_id.to_pylist(),
                self.properties.to_pylist(),
            )
        )


def columns_of(project_id: int, plain: ev.PlainBatch) -> EventColumns:
    values = plain.values
    every_key: set[str] = set().union(*values)
    keys = every_key - ev.SERVER_ADDED
    by_key: dict[str, KindArrays] = {}
    counts: dict[str, int] = {}
    for key in sorted(keys):
        column = [doc.get(key, MISSING) for doc in values]
        split = split_values(column)
        if split is None:
            continue
        ps, pn, po = split
        by_key[key] = (
            None if ps is None else pa.array(ps, pa.string()),
            None if pn is None else pa.array(pn, pa.float64()),
            None if po is None else pa.array(po, pa.string()),
        )
        counts[key] = len(column) - column.count(MISSING)
    time_ms = pa.array(plain.times_ms, pa.int64())
    event = pa.array(plain.names, pa.string())
    return EventColumns(
        project_id=project_id,
        time_ms=time_ms,
        event=event,
        distinct_id=pa.array(plain.distinct_ids, pa.string()),
        insert_id=pa.array(plain.insert_ids, pa.string()),
        properties=pa.array(list(map(orjson.dumps, values)), pa.binary()),
        by_key=by_key,
        counts=counts,
        key_counts=_key_counts(time_ms, event, values, by_key, counts, sorted(every_key & ev.SERVER_ADDED)),
    )


def _key_counts(
    time_ms: pa.Array,
    event: pa.Array,
    values: list[dict[str, Any]],
    by_key: dict[str, KindArrays],
    counts: dict[str, int],
    added: list[str],
) -> KeyCounts:
    """The batch's KeyCounts, with no per-event Python work for the common batch: the events are numbered by
    their (hour, event) group once, a key that every event carries counts each group's size, and any other
    key counts the events where one of its split columns holds a value (each event with the key has a value
    in exactly one of them). The server-added keys (`added`, not split) are taken to be in every event when
    the batch's key total says so (the sum of every document's length); else each is looked up."""
    size = len(values)
    hours = time_ms.to_numpy() // HOUR_MS  # numpy's // floors, as the hour of a time before 1970 must
    encoded = event.dictionary_encode()
    names = encoded.dictionary
    groups, group_of = np.unique(hours * len(names) + encoded.indices.to_numpy(), return_inverse=True)
    group_sizes = np.bincount(group_of, minlength=len(groups))
    keys = sorted(counts.keys() | set(added))
    matrix = np.empty((len(keys), len(groups)), dtype=np.int64)  # events of each group with each key
    in_every = sum(counts.values()) + size * len(added) == sum(map(len, values))
    for row, key in enumerate(keys):
        if counts.get(key, size if in_every else -1) == size:
            matrix[row] = group_sizes
            continue
        if key in by_key:
            present = np.zeros(size, dtype=bool)
            for kind in by_key[key]:
                if kind is not None:
                    present |= kind.is_valid().to_numpy(zero_copy_only=False)
        else:
            present = np.fromiter((key in doc for doc in values), dtype=bool, count=size)
        matrix[row] = np.bincount(group_of, weights=present, minlength=len(groups))
    key_index, group_index = np.nonzero(matrix)
    group = groups[group_index]
    return KeyCounts(
        hour=pa.array(group // len(names), pa.int64()),
        event=names.take(pa.array(group % len(names))),
        name=pa.array(keys, pa.string()).take(pa.array(key_index)),
        n=pa.array(matrix[key_index, group_index], pa.int64()),
    )


def import_columns(body: bytes, project: Project, ctx: ev.IngestContext, *, locating: bool) -> EventColumns | None:
    """The /import request body `body` (decompressed) as columns when it is a plain batch (see above), else
    None. `ctx` without its locator (`locating`: whether the server has one), as it crosses processes."""
    if not payloads.looks_like_json(body):
        return None
    try:
        records = payloads.as_records(payloads.parse_json_body(body))
    except Exception:  # the ordinary path parses it again and says what is wrong
        return None
    if not records or len(records) > ev.MAX_BATCH_EVENTS:
        return None
    encoded = ev.encoded_records(records)
    if encoded is None:
        return None
    plain = ev.plain_batch(records, encoded, project, ctx, locating=locating)
    return None if plain is None else columns_of(project.id, plain)
