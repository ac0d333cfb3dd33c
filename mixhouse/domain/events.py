"""Validating and normalising events on their way into the store (Mixpanel's track-event, import-events and
event-deduplication pages under https://developer.mixpanel.com/reference/).

The output, StoredEvent, is what the engine keeps: fixed fields as values, every other property as
one JSON object in the order it was sent, enriched with what the server adds at ingestion.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import repeat
from typing import Any

import orjson

from mixhouse.domain import geolocation, identity
from mixhouse.domain.project import IdMerge, Project
from mixhouse.geo import Location, Locator

MAX_BATCH_EVENTS = 2000
MAX_EVENT_BYTES = 1024 * 1024
MAX_PROPERTIES = 255
MAX_NESTING_DEPTH = 3
MAX_LIST_ITEMS = 255
MAX_STRING_CHARS = 255
TRACK_MAX_AGE_MS = 5 * 24 * 3600 * 1000
FUTURE_REJECT_MS = 3600 * 1000
EARLIEST_MS = 31_536_000_000  # 1971-01-01T00:00:00Z
MS_THRESHOLD = 100_000_000_000  # a time at or above this is in milliseconds (1e11 s is the year 5138)

IDENTITY_EVENTS = frozenset({"$identify", "$create_alias", "$merge"})
SIMPLIFIED_REFUSES_IDENTITY = "identity events are not allowed when project is using simplified identity management"

DISALLOWED_IDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "<nil>",
        "0",
        "-1",
        "true",
        "false",
        "[]",
        "{}",
    }
)
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_INSERT_IDS = re.compile(r"(?:[A-Za-z0-9-]{1,36}\n)*")  # a batch's insert ids, each followed by a newline
# isinstance against tuples made once: a `str | int` union would be built again on every call, per event.
_NUMBER = (int, float)
_ID = (str, int)
_SCALAR = (str, int, float)
# Property values stored as they are when no string is too long (what the per-property loop checks for).
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
# A quote and more than MAX_STRING_CHARS bytes without one. Tried only where a quote is, each try stops at
# the next quote: linear in the event's size.
_LONG_RUN = re.compile(rb'"[^"]{%d}' % (MAX_STRING_CHARS + 1))
# Properties the server consumes instead of storing.
_CONSUMED = frozenset({"time", "distinct_id", "token", "ip", "$ip"})  # an address is never stored
_CONSUMED_ORDER = tuple(sorted(_CONSUMED))
# What the server adds to every event (and the dedup key): bookkeeping, left out of property discovery.
SERVER_ADDED = frozenset(
    {"$insert_id", "$import", "$mp_api_endpoint", "$mp_api_timestamp_ms", "$mp_event_size", "mp_processing_time_ms"}
)


class Endpoint(StrEnum):
    TRACK = "track"
    IMPORT = "import"


@dataclass(frozen=True)
class IngestContext:
    endpoint: Endpoint
    received_ms: int
    api_host: str
    client_ip: str | None = None
    use_ip: bool = False
    merge_allowed: bool = False  # /import with the project secret or a service account may $merge (https://developer.mixpanel.com/reference/identity-merge)
    geo: Locator | None = None  # IP geolocation (mixhouse.domain.geolocation); None: off
    locate_request: bool = False  # events without an `ip` property are located by the request's address


@dataclass(slots=True)
class StoredEvent:
    """Never changed once made (not frozen only because a frozen dataclass costs ~3x to construct, once per
    ingested event)."""

    project_id: int
    time_ms: int
    event: str
    distinct_id: str
    insert_id: str | None
    properties: bytes  # a JSON object
    identity: identity.IdentityLink | None = None  # the identity link it carries, stored with it (docs/identity.md)
    # `properties` as the dict it was written from, when the writer may read it instead of parsing the JSON
    # again (never changed; equal to orjson.loads(properties)). None: parse `properties`.
    values: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FailedRecord:
    index: int
    insert_id: str | None
    field: str
    message: str

    def as_dict(self) -> dict[str, object]:
        # The prose example names the key "$insert_id", the OpenAPI schema "insert_id": emit both.
        return {
            "index": self.index,
            "$insert_id": self.insert_id,
            "insert_id": self.insert_id,
            "field": self.field,
            "message": self.message,
        }


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class PreparedBatch:
    events: list[StoredEvent] = field(default_factory=list)
    failed: list[FailedRecord] = field(default_factory=list)
    ignored: int = 0  # accepted but not stored ($ignore)

    @property
    def accepted(self) -> int:
        return len(self.events) + self.ignored


ProjectFor = Callable[[dict[str, Any]], Project]


def time_to_ms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise _Invalid("properties.time", "'properties.time' is invalid: must be specified as seconds since epoch")
    ms = round(value) if value >= MS_THRESHOLD else round(value * 1000)
    if ms < EARLIEST_MS:
        raise _Invalid("properties.time", "'properties.time' is invalid: must be specified as seconds since epoch")
    return ms


def _check_value(value: Any, name: str, depth: int) -> Any:
    """The value as stored: long strings cut to 255 characters, limits on lists and objects checked."""
    if isinstance(value, str):
        return value[:MAX_STRING_CHARS]
    if isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise _Invalid(
                f"properties.{name}",
                f"'properties.{name}' is invalid: lists hold at most {MAX_LIST_ITEMS} items",
            )
        return [_check_value(v, name, depth) for v in value]
    if isinstance(value, dict):
        if depth >= MAX_NESTING_DEPTH:
            raise _Invalid(
                f"properties.{name}",
                f"'properties.{name}' is invalid: objects nest at most {MAX_NESTING_DEPTH} deep",
            )
        if len(value) > MAX_PROPERTIES:
            raise _Invalid(
                f"properties.{name}",
                f"'properties.{name}' is invalid: objects hold at most {MAX_PROPERTIES} keys",
            )
        return {k[:MAX_STRING_CHARS]: _check_value(v, name, depth + 1) for k, v in value.items()}
    return value


def _plain_properties(props: dict[str, Any], encoded: bytes) -> dict[str, Any] | None:
    """`props` as stored, without a look at each property, when every value is a string, number, boolean
    or null and no string (key or value) is longer than MAX_STRING_CHARS; else None (the caller's loop).

    `encoded` is the event as orjson wrote it (UTF-8, a character at least one byte): a string of more than
    MAX_STRING_CHARS characters is a quote followed by more than that many bytes without one (`_LONG_RUN`;
    a run outside strings, digits of a huge number, only sends the event to the loop). An escaped quote
    would split such a run, so an event with any escape (a backslash: one memchr) takes the loop. About
    0.6 us an event against ~1.2 us for the loop over 7 properties (bench/bench_ingest.py)."""
    if not _PLAIN_TYPES.issuperset(map(type, props.values())):
        return None
    if b"\\" in encoded or _LONG_RUN.search(encoded) is not None:
        return None
    stored = props.copy()
    for key in _CONSUMED_ORDER:
        if key in stored:
            del stored[key]
    return stored


def _valid_insert_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_INSERT_ID.fullmatch(value)) and value.lower() not in DISALLOWED_IDS


def _distinct_id(props: dict[str, Any], project: Project, ctx: IngestContext, event: str = "") -> str | None:
    """The distinct id to store; Simplified ID Merge derives it from $user_id / $device_id (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-simplified)."""
    if project.id_merge is IdMerge.SIMPLIFIED:
        user_id = props.get("$user_id")
        device_id = props.get("$device_id")
        if isinstance(user_id, _ID) and not isinstance(user_id, bool) and str(user_id) != "":
            return str(user_id)
        if isinstance(device_id, _ID) and not isinstance(device_id, bool) and str(device_id) != "":
            return "$device:" + str(device_id).removeprefix("$device:")
    raw = props.get("distinct_id")
    sent_empty = raw == ""
    if (raw is None or raw == "") and project.id_merge is IdMerge.ORIGINAL:
        raw = identity.inferred_distinct_id(event, props)
    if raw is None or raw == "":
        if sent_empty and ctx.endpoint is Endpoint.IMPORT:
            return ""  # allowed: the event is kept but left out of behavioural analysis (https://developer.mixpanel.com/reference/import-events)
        if ctx.endpoint is Endpoint.TRACK:
            if ctx.use_ip and ctx.client_ip:
                return hashlib.sha1(ctx.client_ip.encode()).hexdigest()
            return ""
        return None
    if isinstance(raw, bool) or not isinstance(raw, _SCALAR):
        raise _Invalid("properties.distinct_id", "'properties.distinct_id' is invalid: must be a string")
    text = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
    if text.lower() in DISALLOWED_IDS:
        raise _Invalid("properties.distinct_id", f"'properties.distinct_id' is invalid: {text!r} is not allowed")
    return text[:MAX_STRING_CHARS]


def _prepare_one(
    record: Any, project_for: ProjectFor, ctx: IngestContext, location: Location | None = None
) -> StoredEvent | None:
    if not isinstance(record, dict):
        raise _Invalid("", "each event must be a JSON object")
    name = record.get("event")
    if not isinstance(name, str) or not name.strip():
        raise _Invalid("event", "'event' must not be missing or blank")
    props = record.get("properties", {})
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise _Invalid("properties", "'properties' must be a JSON object")
    try:
        encoded = orjson.dumps(record)
    except orjson.JSONEncodeError as exc:  # parses, but nests deeper than can be stored (orjson: 255)
        raise _Invalid("properties", "'properties' is invalid: values nest too deeply") from exc
    size = len(encoded)
    if size > MAX_EVENT_BYTES:
        raise _Invalid("", f"event exceeds max size of {MAX_EVENT_BYTES} bytes")
    if len(props) > MAX_PROPERTIES:
        raise _Invalid("properties", f"'properties' is invalid: at most {MAX_PROPERTIES} properties per event")
    project = project_for(props)

    now = ctx.received_ms
    if "time" in props and props["time"] is not None:
        time_ms = time_to_ms(props["time"])
    elif ctx.endpoint is Endpoint.TRACK or name in IDENTITY_EVENTS:
        # Identity events need no time: Mixpanel's own $merge example has none, nor does the PyPI
        # SDK's merge(). They take their arrival time, as /track events do.
        time_ms = now
    else:
        raise _Invalid("properties.time", "'properties.time' is invalid: must not be missing")
    if time_ms > now + FUTURE_REJECT_MS:
        raise _Invalid("properties.time", "'properties.time' is invalid: must not be in the future")
    time_ms = min(time_ms, now)
    if ctx.endpoint is Endpoint.TRACK and time_ms < now - TRACK_MAX_AGE_MS:
        raise _Invalid(
            "properties.time",
            "'properties.time' is invalid: /track accepts events of the last 5 days; send older ones to /import",
        )

    insert_id = props.get("$insert_id")
    if insert_id is not None and not _valid_insert_id(insert_id):
        raise _Invalid(
            "properties.$insert_id",
            "'properties.$insert_id' is invalid: must be 1 to 36 characters of [A-Za-z0-9-], and not a placeholder such as '0', 'null' or 'undefined'",
        )

    distinct_id = _distinct_id(props, project, ctx, name)
    if distinct_id is None:
        raise _Invalid("properties.distinct_id", "'properties.distinct_id' is invalid: must not be missing")
    if props.get("$ignore") is True:
        return None

    stored = _plain_properties(props, encoded)
    if stored is None:
        stored = {}
        for key, value in props.items():
            if key in _CONSUMED:
                continue
            # The common values (short strings, numbers, booleans, null) are stored as they are without a
            # call per value: this loop runs for every property of every event (bench/bench_ingest.py).
            kind = type(value)
            if kind is str:
                if len(value) > MAX_STRING_CHARS:
                    value = value[:MAX_STRING_CHARS]
            elif kind is not int and kind is not float and kind is not bool and value is not None:
                value = _check_value(value, key, 0)
            stored[key if len(key) <= MAX_STRING_CHARS else key[:MAX_STRING_CHARS]] = value
    if location is not None:
        stored.update(geolocation.properties(location, geolocation.EVENT_GEO))
    if ctx.endpoint is Endpoint.IMPORT:
        stored["$import"] = True
    stored["$mp_api_endpoint"] = ctx.api_host
    stored["$mp_api_timestamp_ms"] = now
    stored["$mp_event_size"] = size
    stored["mp_processing_time_ms"] = now
    # Only these events can carry a link (identity.link_of): the others skip the call, once per event.
    if project.id_merge is IdMerge.SIMPLIFIED:
        may_link = "$user_id" in props and "$device_id" in props
    else:
        may_link = name in IDENTITY_EVENTS
    return StoredEvent(
        project_id=project.id,
        time_ms=time_ms,
        event=name[:MAX_STRING_CHARS],
        distinct_id=distinct_id,
        insert_id=insert_id,
        properties=orjson.dumps(stored),
        values=stored,
        identity=identity.link_of(
            name,
            props,
            time_ms,
            project.id_merge,
            merge_allowed=ctx.endpoint is Endpoint.IMPORT and ctx.merge_allowed,
        )
        if may_link
        else None,
    )


_DICT_TYPE = {dict}
_STR_TYPE = {str}
_INT_TYPE = {int}
_NUMBER_TYPES = frozenset(_NUMBER)
_OPTIONAL_STR_TYPES = {str, type(None)}
_NONE_TYPE = {type(None)}
_get: Callable[[dict[str, Any], str], Any] = dict.get
# The long-run test of a whole batch: every byte but the quote read as `a`, then one substring search for
# a run of more than MAX_STRING_CHARS of them (a quarter of `_LONG_RUN`'s time on a batch's JSON).
_QUOTES_ONLY = bytes(byte if byte == ord('"') else ord("a") for byte in range(256))
_LONG_RUN_OF_A = b"a" * (MAX_STRING_CHARS + 1)
_SHAPE = bytes(byte if byte in b'"{' else ord("[") if byte in b"\\[" else ord("a") for byte in range(256))


@dataclass(slots=True)
class PlainBatch:
    """What `plain_batch` stores of a batch, field by field (one entry an event, in order)."""

    times_ms: list[int]
    names: list[str]
    distinct_ids: list[str]
    insert_ids: list[str | None]
    values: list[dict[str, Any]]  # the stored properties, as dicts


def _prepare_plain_batch(
    records: list[Any], encoded: list[bytes], project: Project, ctx: IngestContext
) -> PreparedBatch | None:
    """The /import batch as StoredEvents through `plain_batch`, or None when it refuses the batch."""
    plain = plain_batch(records, encoded, project, ctx, locating=ctx.geo is not None)
    if plain is None:
        return None
    batch = PreparedBatch()
    batch.events = list(
        map(
            StoredEvent,
            repeat(project.id),
            plain.times_ms,
            plain.names,
            plain.distinct_ids,
            plain.insert_ids,
            map(orjson.dumps, plain.values),
            repeat(None),
            plain.values,
        )
    )
    return batch


def plain_batch(
    records: list[Any], encoded: list[bytes], project: Project, ctx: IngestContext, *, locating: bool
) -> PlainBatch | None:
    """The /import batch in a few passes over all its events at once, each a loop in C (map, set, join, a
    search of the batch's JSON), or None when any event needs the per-event look (`_prepare_one`, which
    then decides, reports and stores everything). `records` are objects, `encoded` their JSON (`encoded_records`).
    For the common batch of valid events with flat properties it stores exactly what `_prepare_one` stores
    at well under half its CPU (bench/bench_validate.py, docs/ingestion.md).

    It answers only when every event is one that `_prepare_one` would store without a change to a value:
    an object with a non-blank string `event` that names no identity event and an object `properties`;
    only strings, numbers, booleans and null among its values (its JSON holds no `[` and no `{` beyond the
    two of the event and its properties); no string longer than MAX_STRING_CHARS (none cut; no escape, no
    quote followed by more than MAX_STRING_CHARS bytes without one: the `_plain_properties` argument, made
    once for the batch); a numeric `time`; a non-empty, allowed string `distinct_id`; a valid `$insert_id`
    or none; no `$ignore: true`; nothing to locate; under Simplified ID Merge no `$user_id`/`$device_id`.
    A check that might refuse a valid event (a `{` inside a string, say) only sends the batch to the loop.
    `locating`: geolocation is on (`ctx.geo`, passed apart for a caller in another process, where it is None)."""
    count = len(records)
    if not count:
        return None
    props_list = list(map(_get, records, repeat("properties")))
    if set(map(type, props_list)) != _DICT_TYPE:
        return None
    names = list(map(_get, records, repeat("event")))
    if set(map(type, names)) != _STR_TYPE or not all(map(str.strip, names)) or not IDENTITY_EVENTS.isdisjoint(names):
        return None
    text = b"\n".join(encoded)
    if b"\\" in text or b"[" in text or text.count(b"{") != 2 * count:
        return None
    if _LONG_RUN_OF_A in text.translate(_QUOTES_ONLY):
        return None
    sizes = list(map(len, encoded))
    if max(sizes) > MAX_EVENT_BYTES or max(map(len, props_list)) > MAX_PROPERTIES:
        return None
    keys = set().union(*props_list)  # every property name of the batch (a probe of each event's dict costs more)
    if project.id_merge is IdMerge.SIMPLIFIED and ("$user_id" in keys or "$device_id" in keys):
        return None
    if locating and (ctx.locate_request or "ip" in keys or "$ip" in keys):
        return None
    if "$ignore" in keys and True in map(_get, props_list, repeat("$ignore")):  # (1 and 1.0 take the loop too)
        return None

    now = ctx.received_ms
    times = list(map(_get, props_list, repeat("time")))
    kinds = set(map(type, times))
    if kinds == _INT_TYPE and max(times) < MS_THRESHOLD:
        times_ms = list(map(operator.mul, times, repeat(1000)))
        if min(times_ms) < EARLIEST_MS:
            return None
    elif kinds <= _NUMBER_TYPES:
        try:
            times_ms = list(map(time_to_ms, times))
        except (_Invalid, ArithmeticError, ValueError):
            return None
    else:
        return None
    latest = max(times_ms)
    if latest > now + FUTURE_REJECT_MS:
        return None
    if latest > now:
        times_ms = list(map(min, times_ms, repeat(now)))

    insert_ids = list(map(_get, props_list, repeat("$insert_id")))
    kinds = set(map(type, insert_ids))
    if kinds == _STR_TYPE:
        given = insert_ids
    elif kinds == _OPTIONAL_STR_TYPES:
        given = [value for value in insert_ids if value is not None]
    elif kinds == _NONE_TYPE:
        given = []
    else:
        return None
    if given:
        joined = "\n".join(given) + "\n"  # (no id holds a newline: it would have been escaped in `text`)
        if _INSERT_IDS.fullmatch(joined) is None or not DISALLOWED_IDS.isdisjoint(map(str.lower, given)):
            return None

    distinct_ids = list(map(_get, props_list, repeat("distinct_id")))
    if set(map(type, distinct_ids)) != _STR_TYPE or "" in distinct_ids:
        return None
    if not DISALLOWED_IDS.isdisjoint(map(str.lower, distinct_ids)):
        return None

    # Stored: the properties in the order sent without those consumed, then what the server adds (in
    # `_prepare_one`'s order; a key the sender used keeps its place and takes the server's value).
    added = {
        "$import": True,
        "$mp_api_endpoint": ctx.api_host,
        "$mp_api_timestamp_ms": now,
        "$mp_event_size": 0,  # each event's own, set below
        "mp_processing_time_ms": now,
    }
    consumed = [key for key in _CONSUMED_ORDER if key in keys and key not in ("time", "distinct_id")]
    values: list[dict[str, Any]] = []
    append = values.append
    for props, size in zip(props_list, sizes, strict=True):
        stored = {**props, **added}
        stored["$mp_event_size"] = size
        del stored["time"], stored["distinct_id"]
        for key in consumed:
            stored.pop(key, None)
        append(stored)
    return PlainBatch(times_ms, names, distinct_ids, insert_ids, values)


def encoded_records(records: list[Any]) -> list[bytes] | None:
    """Each record's JSON as orjson writes it (its length is the event's `$mp_event_size`), when every record
    is an object that orjson can write; else None."""
    if set(map(type, records)) != _DICT_TYPE:
        return None
    try:
        return list(map(orjson.dumps, records))
    except orjson.JSONEncodeError:  # nests deeper than orjson writes: the per-event look says so
        return None


def _prepare_plain_events(
    records: list[Any], encoded: list[bytes], project: Project, ctx: IngestContext
) -> dict[int, StoredEvent] | None:
    """For a batch the batch path refused: the events it can take, prepared on it, by index; None when
    there are none or all of them are (then the refusal was not about one event's JSON).

    An event is left to the per-event look when its own JSON holds an escape, a `[`, a `{` beyond its
    two or a long run (what refuses most batches: a list, an object or a long string in one event); the
    others then take the batch path together, or all take the loop if that still refuses them."""
    # Each event's JSON with `\\` read as `[`, `"` and `{` kept, every other byte read as `a`: then a `[`
    # is an escape or a list, a third `{` an object (or a brace in a string), a run of `a` a long string.
    # (bytes.find and bytes.count: `in` through map takes the slower buffer path.)
    shapes = list(map(bytes.translate, encoded, repeat(_SHAPE)))
    flags = zip(
        map(bytes.find, shapes, repeat(b"[")),
        map(bytes.count, shapes, repeat(b"{")),
        map(bytes.find, shapes, repeat(_LONG_RUN_OF_A)),
        strict=True,
    )
    plain = [
        index for index, (bracket, braces, long_run) in enumerate(flags) if bracket < 0 and braces == 2 and long_run < 0
    ]
    if not plain or len(plain) == len(records):
        return None
    prepared = _prepare_plain_batch([records[i] for i in plain], [encoded[i] for i in plain], project, ctx)
    return None if prepared is None else dict(zip(plain, prepared.events, strict=True))


def prepare_events(
    records: list[Any], project_for: ProjectFor, ctx: IngestContext, *, project: Project | None = None
) -> PreparedBatch:
    """Validate every record; valid ones become StoredEvents, the others FailedRecords by index.

    `project_for` maps an event's properties to its project, raising ValueError with a message
    when it has none (a missing token on /track). `project`: the project of every record, when the
    batch has one (/import); such a batch may be prepared all at once (`_prepare_plain_batch`), or its
    plain events at once and the others one by one (`_prepare_plain_events`)."""
    plain: dict[int, StoredEvent] | None = None
    if project is not None and ctx.endpoint is Endpoint.IMPORT and (encoded := encoded_records(records)) is not None:
        prepared = _prepare_plain_batch(records, encoded, project, ctx)
        if prepared is not None:
            return prepared
        plain = _prepare_plain_events(records, encoded, project, ctx)
    batch = PreparedBatch()
    # Every address of the batch located at once, each distinct one once (off the per-event loop).
    # Without the request's address to fall back on, only an event with an `ip` or `$ip` can be located
    # (geolocation.event_ip): the others are not looked at (an /import batch usually has none).
    ips = [
        geolocation.event_ip(r["properties"], ctx.client_ip, ctx.locate_request)
        if ctx.geo is not None
        and isinstance(r, dict)
        and isinstance(r.get("properties"), dict)
        and (ctx.locate_request or "ip" in r["properties"] or "$ip" in r["properties"])
        else None
        for r in records
    ]
    locations = geolocation.locate_all(ctx.geo, ips)
    for index, record in enumerate(records):
        if plain is not None and index in plain:
            batch.events.append(plain[index])  # (the batch path took it: nothing to locate, fail or ignore)
            continue
        try:
            stored = _prepare_one(record, project_for, ctx, locations[index])
        except _Invalid as exc:
            batch.failed.append(FailedRecord(index, _insert_id_of(record), exc.field, exc.message))
            continue
        except ValueError as exc:
            batch.failed.append(FailedRecord(index, _insert_id_of(record), "properties.token", str(exc)))
            continue
        if stored is None:
            batch.ignored += 1
        else:
            batch.events.append(stored)
    return batch


def _insert_id_of(record: Any) -> str | None:
    if isinstance(record, dict) and isinstance(record.get("properties"), dict):
        value = record["properties"].get("$insert_id")
        return value if isinstance(value, str) else None
    return None


def has_identity_events(records: list[Any]) -> bool:
    try:  # every record an object with a hashable `event` (the usual batch): one loop in C
        return not IDENTITY_EVENTS.isdisjoint(map(_get, records, repeat("event")))
    except TypeError:  # a record that is not an object, or an event name that is a list or an object
        return any(
            isinstance(r, dict) and isinstance(r.get("event"), str) and r["event"] in IDENTITY_EVENTS for r in records
        )
