"""Arrow batches of warehouse rows into the records Mixpanel's ingestion APIs take (an /import event, an
/engage or /groups `$set`, lookup-table rows). Columns are converted whole with Arrow compute (times to
epoch milliseconds, timestamps to Mixpanel's `YYYY-MM-DDTHH:MM:SS`, decimals to numbers) and turned into
Python objects in one call per batch; the one loop per row assembles the record and leaves out nulls
(a NULL column sets no property)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mixhouse.imports.sources import HASH_COLUMN, SourceError
from mixhouse.lookup.csvtable import DATETIME_KEY, Table

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class Stamp:
    """The `$warehouse_*` properties every imported event carries."""

    warehouse_type: str
    import_id: int
    job_id: str
    run_id: str
    table: str

    def properties(self) -> dict[str, Any]:
        return {
            "$warehouse_type": self.warehouse_type,
            "$warehouse_import_id": self.import_id,
            "$warehouse_import_job_id": self.job_id,
            "$warehouse_import_run_id": self.run_id,
            "$warehouse_table": self.table,
        }


def _is_json(t: pa.DataType) -> bool:
    return isinstance(t, pa.ExtensionType) and t.extension_name == "arrow.json"


def _numeric_text(column: pa.Field) -> bool:
    """PostgreSQL's `numeric` comes from the ADBC driver as text (arbitrary precision): a number here."""
    return (column.metadata or {}).get(b"POSTGRESQL:type") == b"numeric"


def _property_array(arr: pa.Array, column: pa.Field | None = None) -> tuple[pa.Array | None, bool]:
    """The column as property values (None: a type with no property form) and whether it holds JSON text."""
    t = arr.type
    if column is not None and _numeric_text(column):
        try:
            return pc.cast(arr, pa.float64()), False
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return arr, False  # NaN and the like: kept as text
    if _is_json(t):
        return arr.storage, True
    if pa.types.is_timestamp(t):
        # whole seconds (strftime prints a fraction for finer units), in UTC
        seconds = pc.cast(arr, pa.timestamp("s", "UTC" if t.tz is not None else None), safe=False)
        return pc.strftime(seconds, format=DATETIME_FORMAT), False
    if pa.types.is_date(t):
        return pc.strftime(pc.cast(arr, pa.timestamp("s")), format=DATETIME_FORMAT), False
    if pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64()), False
    if (
        pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_null(t)
        or pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_struct(t)
    ):
        return arr, False
    try:
        return pc.cast(arr, pa.string()), False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None, False  # binary and the like: not a property


def _strings(arr: pa.Array, what: str) -> pa.Array:
    if _is_json(arr.type):
        arr = arr.storage
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise SourceError(f"the {what} column must hold strings or numbers, not {arr.type}") from None


def time_ms(arr: pa.Array, column: str) -> pa.Array:
    """A time column as epoch milliseconds (timestamps, dates, ISO strings), or as sent (numbers: seconds or
    milliseconds, read as /import reads them)."""
    t = arr.type
    try:
        if pa.types.is_timestamp(t):
            return pc.cast(pc.cast(arr, pa.timestamp("ms", t.tz), safe=False), pa.int64())
        if pa.types.is_date(t):
            return pc.cast(pc.cast(arr, pa.timestamp("ms")), pa.int64())
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return arr
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return pc.cast(pc.cast(arr, pa.timestamp("ms", "UTC")), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    raise SourceError(f"the time column {column!r} must hold timestamps, dates or epoch numbers, not {t}")


class Columns:
    """Which columns of a batch become properties, under which names."""

    def __init__(self, schema: pa.Schema, special: set[str], mappings: Mapping[str, str] | None) -> None:
        self.mappings = mappings
        self.names: list[str] = []
        self.props: list[str] = []
        for name in schema.names:
            if name in special or name == HASH_COLUMN:
                continue
            self.names.append(name)
            self.props.append((mappings or {}).get(name, name))


def _rows(
    batch: pa.RecordBatch, columns: Columns, extra: dict[str, pa.Array]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each row's properties (nulls included), and the names of properties holding JSON text."""
    arrays: list[pa.Array] = []
    names: list[str] = []
    json_props: list[str] = []
    for column, prop in zip(columns.names, columns.props, strict=True):
        values, is_json = _property_array(batch.column(column), batch.schema.field(column))
        if values is None:
            continue
        arrays.append(values)
        names.append(prop)
        if is_json:
            json_props.append(prop)
    for name, values in extra.items():
        arrays.append(values)
        names.append(name)
    if not arrays:
        return [{} for _ in range(batch.num_rows)], []
    return pa.StructArray.from_arrays(arrays, names=names).to_pylist(), json_props


def _cleaned(
    batch: pa.RecordBatch, columns: Columns, extra: dict[str, pa.Array], json_column: str | None
) -> list[dict[str, Any]]:
    """Each row's properties, cleaned (see _clean); rows with no JSON to parse and no null skip the per-row
    work."""
    rows, json_props = _rows(batch, columns, extra)
    json_prop = (columns.mappings or {}).get(json_column, json_column) if json_column else None
    if json_prop is not None and json_prop not in json_props:
        json_props.append(json_prop)
    if json_props:
        return [_clean(row, json_props, json_prop) for row in rows]
    if any(batch.column(c).null_count for c in columns.names) or any(a.null_count for a in extra.values()):
        return [{k: v for k, v in row.items() if v is not None} for row in rows]
    return rows


def _clean(row: dict[str, Any], json_props: list[str], json_column: str | None) -> dict[str, Any]:
    """Nulls left out; JSON text parsed; the JSON-properties column flattened into the properties."""
    for prop in json_props:
        text = row.get(prop)
        if text is not None:
            with contextlib.suppress(orjson.JSONDecodeError):  # not JSON: kept as text
                row[prop] = orjson.loads(text)
    if json_column is not None:
        nested = row.pop(json_column, None)
        if isinstance(nested, dict):
            for key, value in nested.items():
                row.setdefault(key, value)
    return {k: v for k, v in row.items() if v is not None}


def events(batch: pa.RecordBatch, config: Mapping[str, Any], stamp: Stamp) -> list[dict[str, Any]]:
    """/import records, one per row: `$insert_id` is the row's hash."""
    n = batch.num_rows
    time_column = str(config["time_column_name"])
    special = {time_column}
    extra: dict[str, pa.Array] = {"time": time_ms(batch.column(time_column), time_column)}
    if "event_column_name" in config:
        special.add(config["event_column_name"])
        names: list[Any] = _strings(batch.column(config["event_column_name"]), "event").to_pylist()
    else:
        names = [config["event_name"]] * n
    user_column = config.get("user_column_name")
    device_column = config.get("device_column_name")
    if user_column:
        special.add(user_column)
        users = _strings(batch.column(user_column), "user id")
        extra["distinct_id"] = pc.fill_null(users, "") if not device_column else users
        if device_column:
            extra["$user_id"] = users
    else:
        extra["distinct_id"] = pa.repeat("", n) if not device_column else pa.nulls(n, pa.string())
    if device_column:
        special.add(device_column)
        extra["$device_id"] = _strings(batch.column(device_column), "device id")
    if config.get("company_column_name"):
        pass  # kept as a property under its column name (the group key of a B2B project)
    if config.get("insert_time_column_name"):
        special.add(config["insert_time_column_name"])
    extra["$insert_id"] = batch.column(HASH_COLUMN)
    columns = Columns(batch.schema, special, config.get("property_mappings"))
    rows = _cleaned(batch, columns, extra, config.get("json_properties_column_name"))
    constants = stamp.properties()
    return [{"event": name, "properties": props | constants} for name, props in zip(names, rows, strict=True)]


def profile_keys(batch: pa.RecordBatch, config: Mapping[str, Any], *, group: bool) -> pa.Array:
    """Each row's user id (or group id), as strings."""
    key_column = str(config["group_id_column"] if group else config["user_column_name"])
    return _strings(batch.column(key_column), "group id" if group else "user id")


def profile_sets(
    batch: pa.RecordBatch, config: Mapping[str, Any], token: str, *, group_key: str | None
) -> tuple[list[dict[str, Any]], pa.Array]:
    """/engage (or /groups, with `group_key`) `$set` updates, one per row, and each row's key."""
    key_column = str(config["group_id_column"] if group_key else config["user_column_name"])
    keys = profile_keys(batch, config, group=group_key is not None)
    special = {key_column}
    if config.get("insert_time_column_name"):
        special.add(config["insert_time_column_name"])
    columns = Columns(batch.schema, special, config.get("property_mappings"))
    rows = _cleaned(batch, columns, {}, config.get("json_properties_column_name"))
    records = []
    for key, row in zip(keys.to_pylist(), rows, strict=True):
        record: dict[str, Any] = {"$token": token, "$set": row, "$ignore_time": True}
        if group_key:
            record["$group_key"] = group_key
            record["$group_id"] = key
        else:
            record["$distinct_id"] = key
        records.append(record)
    return records, keys


def profile_deletes(keys: list[str], token: str, *, group_key: str | None) -> list[dict[str, Any]]:
    if group_key:
        return [{"$token": token, "$group_key": group_key, "$group_id": k, "$delete": ""} for k in keys]
    return [{"$token": token, "$distinct_id": k, "$delete": "", "$ignore_alias": True} for k in keys]


def lookup_rows(table: pa.Table, key_column: str) -> Table:
    """A lookup table's rows (the key column first, as an uploaded CSV has it); timestamps as datetimes."""
    if key_column not in table.column_names:
        raise SourceError(f"the table has no column {key_column!r}")
    others = [c for c in table.column_names if c not in (key_column, HASH_COLUMN)]
    keys = _strings(table.column(key_column).combine_chunks(), "key").to_pylist()
    values: dict[str, list[Any]] = {}
    for name in others:
        arr = table.column(name).combine_chunks()
        converted, is_json = _property_array(arr, table.schema.field(name))
        if converted is None:
            continue
        items = converted.to_pylist()
        if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
            items = [None if v is None else {DATETIME_KEY: v} for v in items]
        elif is_json:
            items = [None if v is None else orjson.loads(v) for v in items]
        values[name] = items
    names = list(values)
    rows: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key is None or key in seen:
            continue  # a key appears once in a lookup table: the first row wins
        seen.add(key)
        rows.append((key, {key_column: key} | {n: values[n][i] for n in names}))
    return Table((key_column, *names), rows)
