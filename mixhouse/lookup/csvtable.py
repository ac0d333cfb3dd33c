"""A lookup table upload: RFC 4180 CSV (https://www.rfc-editor.org/rfc/rfc4180), validated as Mixpanel
validates it (https://docs.mixpanel.com/reference/replace-lookup-table): the first record is the header,
its names unique; the first column is the row id, its values unique and not blank; every record has
the header's number of fields. Values are typed: integers and decimals become numbers, RFC 3339
timestamps datetimes, true/false booleans, a JSON array of strings a list, an empty field no value,
anything else a string. The row id always stays the string it was sent as.

A record's `index` is its position in the file counting the header as 0 (the first row is 1)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

MAX_FAILED_RECORDS = 10
DATETIME_KEY = "$datetime"  # how a datetime value is kept in JSON: {"$datetime": "YYYY-MM-DDTHH:MM:SS"} (UTC)

_QUOTED = re.compile(r'"([^"]*(?:""[^"]*)*)"')
_PLAIN = re.compile(r'[^,"\r\n]*')
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?")


@dataclass(frozen=True)
class Failure:
    index: int
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "message": self.message}


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: list[tuple[str, dict[str, Any]]]  # (row id, {column: typed value}) in file order; ids unique


class Invalid(Exception):
    """The upload failed validation: every failure found, in file order."""

    def __init__(self, failures: list[Failure]) -> None:
        super().__init__(f"{len(failures)} records failed validation")
        self.failures = failures

    @property
    def first(self) -> list[Failure]:
        return self.failures[:MAX_FAILED_RECORDS]


def records(text: str) -> list[tuple[list[str], str | None]]:
    """Each record's fields, or a reason it is not RFC 4180. CRLF or LF end a record; a final line
    break is optional."""
    out: list[tuple[list[str], str | None]] = []
    n = len(text)
    pos = 0
    while pos < n:
        fields: list[str] = []
        error: str | None = None
        while True:
            if pos < n and text[pos] == '"':
                m = _QUOTED.match(text, pos)
                if m is None:
                    error, pos = "invalid row: a quoted field is not closed", n
                    break
                fields.append(m.group(1).replace('""', '"'))
                quoted = True
            else:
                m = _PLAIN.match(text, pos)
                assert m is not None  # matches the empty string at least
                fields.append(m.group(0))
                quoted = False
            pos = m.end()
            if pos >= n:
                break
            c = text[pos]
            if c == ",":
                pos += 1
                continue
            if c == "\n":
                pos += 1
                break
            if c == "\r" and text.startswith("\r\n", pos):
                pos += 2
                break
            if quoted:
                error = "invalid row: characters after a closing double quote"
            elif c == '"':
                error = "invalid row: a double quote inside a field that is not quoted"
            else:
                error = "invalid row: a carriage return without a line feed"
            end = text.find("\n", pos)
            pos = n if end < 0 else end + 1
            break
        out.append((fields, error))
    return out


def typed(value: str) -> Any:
    """The value a field stands for; None for an empty field (no value)."""
    if value == "":
        return None
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _DATETIME.fullmatch(value):
        text = value.replace(" ", "T").replace("t", "T")
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return value  # 2024-02-30T00:00:00: looks like one, is not
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return {DATETIME_KEY: moment.strftime("%Y-%m-%dT%H:%M:%S")}
    if value.startswith("["):
        try:
            items = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return items
    return value


def parse(text: str) -> Table:
    """The typed table, or Invalid with every failure."""
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte order mark (spreadsheets write one)
    found = records(text)
    if not found:
        raise Invalid([Failure(0, "invalid header: the table needs a header row")])
    failures: list[Failure] = []
    header, header_error = found[0]
    if header_error:
        raise Invalid([Failure(0, header_error.replace("invalid row", "invalid header"))])
    seen_names: set[str] = set()
    for i, name in enumerate(header):
        if name == "":
            failures.append(Failure(0, f"invalid header: column {i + 1} has no name"))
        elif name in seen_names:
            failures.append(Failure(0, f"invalid header: column name {name!r} appears more than once"))
        seen_names.add(name)
    if failures:
        raise Invalid(failures)
    columns = tuple(header)
    rows: list[tuple[str, dict[str, Any]]] = []
    first_index: dict[str, int] = {}
    for index, (fields, error) in enumerate(found[1:], start=1):
        if error:
            failures.append(Failure(index, error))
            continue
        if len(fields) != len(columns):
            failures.append(Failure(index, "invalid row: wrong number of fields"))
            continue
        key = fields[0]
        if key.strip() == "":
            failures.append(Failure(index, "primary key is required and cannot be blank"))
            continue
        if key in first_index:
            failures.append(
                Failure(index, f"invalid row: row indexes {first_index[key]} and {index} have the same primary key")
            )
            continue
        first_index[key] = index
        values = {columns[0]: key}
        for name, raw in zip(columns[1:], fields[1:], strict=True):
            value = typed(raw)
            if value is not None:
                values[name] = value
        rows.append((key, values))
    if failures:
        raise Invalid(failures)
    return Table(columns, rows)


def plain(value: Any) -> Any:
    """A stored value as the API shows it: datetimes as "YYYY-MM-DDTHH:MM:SS" strings."""
    if isinstance(value, dict) and DATETIME_KEY in value:
        return value[DATETIME_KEY]
    return value
