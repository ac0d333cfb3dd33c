"""What a pipeline writes for one export unit, from the engine's Arrow batches.

Raw pipelines: JSON lines as the raw export API writes them (`{"event", "properties": {"time",
"distinct_id", ...}}`), gzip, in parts of `file_rows` events: `export-part-00000.json.gz`, ...
Schematized pipelines: Parquet (pyarrow), one table for all events (`mp_master_event`, monoschema) or one
per event (multischema), columns named by Mixpanel's transformation rules
(https://docs.mixpanel.com/docs/data-pipelines/old-pipelines/schematized-export-pipeline#transformation-rules)."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from mixhouse.engine.base import IDENTITY_MAPPING_SCHEMA

MASTER_TABLE = "mp_master_event"
PEOPLE_TABLE = "mp_people_data"
IDENTITY_TABLE = "mp_identity_mappings_data"
IDENTITY_SCHEMA = IDENTITY_MAPPING_SCHEMA  # Mixpanel's two columns are the engine's own
MAX_NAME = 128
_SPECIAL = re.compile(r"[^a-z0-9_]")
# Words a warehouse will not take as a column name bare; such names get `res_` in front.
RESERVED = frozenset(
    [
        "all",
        "and",
        "as",
        "asc",
        "between",
        "by",
        "case",
        "cast",
        "column",
        "create",
        "delete",
        "desc",
        "distinct",
        "drop",
        "else",
        "end",
        "exists",
        "false",
        "from",
        "group",
        "having",
        "in",
        "insert",
        "into",
        "is",
        "join",
        "like",
        "limit",
        "not",
        "null",
        "on",
        "or",
        "order",
        "select",
        "table",
        "then",
        "true",
        "union",
        "update",
        "user",
        "using",
        "values",
        "when",
        "where",
        "with",
    ]
)


class Fingerprint:
    """A digest of a unit's rows (insert id, time, id, properties): equal digests, equal data. Sync compares
    it with a fresh scan to find days that late data or a deletion changed.

    One hash per column, fed each batch's values as JSON without the list's brackets and with a comma after
    the last: the digest is the same however the rows are cut into batches (an export reads batches of
    `pipeline_file_rows` rows at most, a sync check batches of 50,000)."""

    # events have the first four, profiles distinct_id and properties, identity mappings the last two
    COLUMNS = ("insert_id", "time", "distinct_id", "properties", "resolved_distinct_id")

    def __init__(self) -> None:
        self._hashes = {name: hashlib.blake2b(digest_size=16) for name in self.COLUMNS}
        self.rows = 0

    def update(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self.rows += batch.num_rows
        present = batch.schema.names
        for name in (n for n in self.COLUMNS if n in present):
            self._hashes[name].update(orjson.dumps(batch.column(name).to_pylist())[1:-1] + b",")

    def hexdigest(self) -> str:
        whole = hashlib.blake2b(digest_size=16)
        for name in self.COLUMNS:
            whole.update(self._hashes[name].digest())
        return f"{self.rows}:{whole.hexdigest()}"


def raw_lines(batch: pa.RecordBatch) -> Iterator[bytes]:
    """The batch as the raw export API's JSON lines (time in seconds, the canonical distinct_id)."""
    names = batch.column("name").to_pylist()
    ids = batch.column("distinct_id").to_pylist()
    times = batch.column("time").to_pylist()
    props = batch.column("properties").to_pylist()
    for name, did, t, p in zip(names, ids, times, props, strict=True):
        head = b'{"event":' + orjson.dumps(name) + b',"properties":{"time":' + str(t // 1000).encode()
        head += b',"distinct_id":' + orjson.dumps(did)
        body = p.encode() if p else b"{}"
        yield head + (b"}" if body == b"{}" else b"," + body[1:]) + b"}\n"


def gzip_part(lines: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    # mtime=0: the same rows give the same bytes, so a rerun's file is byte for byte the first run's.
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as out:
        out.write(b"".join(lines))
    return buffer.getvalue()


# -- schematized ----------------------------------------------------------------------------------------


def clean_name(name: str) -> str:
    """Mixpanel's rules: lower case, `$x` -> `mp_x`, special characters -> `_`, reserved words -> `res_`,
    at most 128 characters."""
    text = name
    if text.startswith("$"):
        text = "mp_" + text[1:]
    text = _SPECIAL.sub("_", text.lower()) or "_"
    if text in RESERVED:
        text = "res_" + text
    return text[:MAX_NAME]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


_ARROW = {"boolean": pa.bool_(), "number": pa.float64(), "string": pa.string()}
# The fixed columns a table may have, in the order they come first.
_FIXED = {"time": pa.int64(), "distinct_id": pa.string(), "mp_event_name": pa.string(), "mp_insert_id": pa.string()}


@dataclass
class Table:
    """One output table: its columns in first-seen order, original (property, type) -> column name."""

    name: str
    fixed: tuple[str, ...]
    columns: dict[tuple[str, str], str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.taken.update(self.fixed)

    def column(self, prop: str, kind: str) -> str:
        key = (prop, kind)
        found = self.columns.get(key)
        if found is not None:
            return found
        base = clean_name(prop)
        if any(p == prop for p, _ in self.columns):
            base = f"{base}_{kind}"[:MAX_NAME]  # a type conflict: the later type gets a suffix
        name, n = base, 1
        while name in self.taken:  # a naming conflict (XY and Xy): xy, xy_1, xy_2, ...
            name = f"{base}_{n}"[:MAX_NAME]
            n += 1
        self.taken.add(name)
        self.columns[key] = name
        return name

    def add(self, fixed: dict[str, Any], props: dict[str, Any]) -> None:
        row = dict(fixed)
        for key, value in props.items():
            if value is None or (key == "$insert_id" and "mp_insert_id" in self.fixed):  # a column of its own
                continue
            kind = _kind(value)
            if isinstance(value, list | dict):
                value = orjson.dumps(value).decode()
            row[self.column(key, kind)] = value
        self.rows.append(row)

    def arrow(self) -> pa.Table:
        fields = [pa.field(name, kind) for name, kind in _FIXED.items() if name in self.fixed]
        fields += [pa.field(col, _ARROW[kind]) for (_, kind), col in self.columns.items()]
        schema = pa.schema(fields)
        data = {f.name: [row.get(f.name) for row in self.rows] for f in fields}
        return pa.table(data, schema=schema)

    def mapping(self) -> dict[str, str]:
        return {f"{prop}:{kind}": col for (prop, kind), col in self.columns.items()}


class Schematizer:
    """Rows of one unit into tables (monoschema: one; multischema: one per event)."""

    def __init__(self, schema_type: str) -> None:
        self.multi = schema_type == "multischema"
        self.tables: dict[str, Table] = {}
        self.event_tables: dict[str, str] = {}  # event name -> table name

    def _table(self, event: str) -> Table:
        if not self.multi:
            name = MASTER_TABLE
        else:
            name = self.event_tables.get(event) or ""
            if not name:
                base = clean_name(event)
                name, n = base, 1
                while name in self.tables:
                    name = f"{base}_{n}"
                    n += 1
                self.event_tables[event] = name
        if name not in self.tables:
            fixed = ("time", "distinct_id", "mp_insert_id") + (() if self.multi else ("mp_event_name",))
            self.tables[name] = Table(name, fixed)
        self.event_tables.setdefault(event, name)
        return self.tables[name]

    def add(self, batch: pa.RecordBatch) -> None:
        names = batch.column("name").to_pylist()
        ids = batch.column("distinct_id").to_pylist()
        times = batch.column("time").to_pylist()
        inserts = batch.column("insert_id").to_pylist()
        props = batch.column("properties").to_pylist()
        for name, did, t, insert_id, p in zip(names, ids, times, inserts, props, strict=True):
            table = self._table(name)
            fixed: dict[str, Any] = {"time": t // 1000, "distinct_id": did, "mp_insert_id": insert_id}
            if not self.multi:
                fixed["mp_event_name"] = name
            table.add(fixed, orjson.loads(p) if p else {})

    def parquet_files(self, file_rows: int) -> Iterator[tuple[str, bytes]]:
        """(relative path, bytes) of every file: `<table>/part-00000.parquet`, ..."""
        for name, table in sorted(self.tables.items()):
            whole = table.arrow()
            for part, start in enumerate(range(0, max(whole.num_rows, 1), file_rows)):
                buffer = io.BytesIO()
                pq.write_table(whole.slice(start, file_rows), buffer, compression="snappy")
                yield f"{name}/part-{part:05d}.parquet", buffer.getvalue()

    def mapping(self) -> dict[str, Any]:
        return {
            "events": dict(sorted(self.event_tables.items())),
            "tables": {name: table.mapping() for name, table in sorted(self.tables.items())},
        }


class PeopleSchematizer:
    """User profiles into Mixpanel's one people table, `mp_people_data`: `distinct_id`, then one column per
    profile property under the same transformation rules as events."""

    def __init__(self) -> None:
        self.table = Table(PEOPLE_TABLE, ("distinct_id",))

    def add(self, batch: pa.RecordBatch) -> None:
        ids = batch.column("distinct_id").to_pylist()
        props = batch.column("properties").to_pylist()
        for did, p in zip(ids, props, strict=True):
            self.table.add({"distinct_id": did}, orjson.loads(p) if p else {})

    def parquet_files(self, file_rows: int) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) of every file: `part-00000.parquet`, ... (an empty table still gets one file)."""
        whole = self.table.arrow()
        for part, start in enumerate(range(0, max(whole.num_rows, 1), file_rows)):
            buffer = io.BytesIO()
            pq.write_table(whole.slice(start, file_rows), buffer, compression="snappy")
            yield f"part-{part:05d}.parquet", buffer.getvalue()

    def mapping(self) -> dict[str, Any]:
        return {"tables": {PEOPLE_TABLE: self.table.mapping()}}


# -- identity mappings -------------------------------------------------------------------------------------


def identity_parts(batches: Iterable[pa.RecordBatch], file_rows: int) -> Iterator[tuple[str, bytes]]:
    """Mixpanel's identity mappings table, `mp_identity_mappings_data` (`distinct_id`,
    `resolved_distinct_id`, both strings), from the engine's batches: (name, bytes) of each part,
    `part-00000.parquet`, ..., `file_rows` rows each, written as the batches come (memory flat in the row
    count); a project with no merged ids still gets one, empty, part."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    part = 0
    for batch in batches:
        while len(batch):
            take = batch.slice(0, file_rows - rows)
            pending.append(take)
            rows += len(take)
            batch = batch.slice(len(take))
            if rows == file_rows:
                yield _identity_part(part, pending)
                part, pending, rows = part + 1, [], 0
    if pending or part == 0:
        yield _identity_part(part, pending)


def _identity_part(part: int, batches: list[pa.RecordBatch]) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches(batches, schema=IDENTITY_SCHEMA), buffer, compression="snappy")
    return f"part-{part:05d}.parquet", buffer.getvalue()


def identity_mapping() -> dict[str, Any]:
    """`schema/identities.json`: the table's columns under the `<name>:<type>` keys of people.json."""
    return {
        "tables": {
            IDENTITY_TABLE: {"distinct_id:string": "distinct_id", "resolved_distinct_id:string": "resolved_distinct_id"}
        }
    }
