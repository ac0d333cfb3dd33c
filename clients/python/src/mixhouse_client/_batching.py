"""Ingestion batches within Mixpanel's limits, and the `$insert_id` that makes retries safe.

Mixpanel accepts at most 2,000 records and 2 MB of uncompressed JSON per request
(https://developer.mixpanel.com/reference/import-events). Records are serialised once; a batch is closed
before the record that would cross either limit. A record that alone exceeds the body limit cannot be
sent: it is reported as failed without a request.

`$insert_id`: Mixpanel deduplicates events with the same event name, distinct_id, time and `$insert_id`.
An event sent without one is given one derived from its content (the first 32 hex digits of the SHA-256
of its canonical JSON), fixed before the first attempt. So a retried batch, or a re-run of the same import
after a crash, carries the same ids and is never counted twice, while two distinct events never share one.
The price: two events identical in every property (same second included) are one event; give them ids
of your own if that is wrong for your data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

try:
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    def canonical(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - orjson is optional, a speed-up only
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def canonical(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)


MAX_RECORDS = 2000
MAX_BYTES = 2 * 1024 * 1024


def content_insert_id(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()[:32]


def with_insert_id(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with `properties.$insert_id` set (a copy; the caller's object is not changed)."""
    properties = event.get("properties")
    props: dict[str, Any] = dict(properties) if isinstance(properties, Mapping) else {}
    out = dict(event)
    if not props.get("$insert_id"):
        props["$insert_id"] = content_insert_id(event)
    out["properties"] = props
    return out


@dataclass
class Batch:
    start: int  # index of the first record in the whole input
    records: list[bytes]  # serialised records
    insert_ids: list[str | None]

    def body(self) -> bytes:
        return b"[" + b",".join(self.records) + b"]"

    @property
    def size(self) -> int:
        return len(self.records)


@dataclass
class Oversized:
    index: int
    size: int
    insert_id: str | None


def batches(
    records: Iterable[Mapping[str, Any]], *, max_records: int = MAX_RECORDS, max_bytes: int = MAX_BYTES
) -> Iterator[Batch | Oversized]:
    """Serialised batches of the records, in order, each within both limits."""
    if not 1 <= max_records <= MAX_RECORDS:
        raise ValueError(f"max_records must be between 1 and {MAX_RECORDS}")
    current: list[bytes] = []
    ids: list[str | None] = []
    size = 2  # the brackets
    start = 0
    index = -1
    for index, record in enumerate(records):
        data = dumps(record)
        properties = record.get("properties")
        insert_id = properties.get("$insert_id") if isinstance(properties, Mapping) else None
        if len(data) + 2 > max_bytes:
            if current:
                yield Batch(start, current, ids)
            current, ids, size = [], [], 2
            start = index + 1
            yield Oversized(index, len(data), insert_id)
            continue
        extra = len(data) + (1 if current else 0)
        if current and (len(current) >= max_records or size + extra > max_bytes):
            yield Batch(start, current, ids)
            current, ids, size, start, extra = [], [], 2, index, len(data)
        current.append(data)
        ids.append(insert_id)
        size += extra
    if current:
        yield Batch(start, current, ids)
