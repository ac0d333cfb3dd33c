"""Reading event files for `import` (JSON lines, CSV, Parquet; gzip by extension or magic bytes), and the
small state files that make `import` and `export` resumable."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mixhouse_client._batching import loads

# CSV cells are text; these columns stay text, others that read as numbers or booleans become them.
TEXT_COLUMNS = frozenset({"distinct_id", "$insert_id", "$user_id", "$device_id", "event"})


@dataclass
class BadLine:
    line: int
    message: str
    raw: str


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "jsonl"


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from disk (progress for compressed files too)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.bytes_read += n
        return n


def open_binary(path: Path) -> tuple[IO[bytes], CountingReader]:
    counting = CountingReader(open(path, "rb"))  # noqa: SIM115 - closed by the caller via the returned stream
    buffered = io.BufferedReader(counting, 1 << 20)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered, mode="rb"), counting  # type: ignore[return-value]
    return buffered, counting


def to_event(record: dict[str, Any]) -> dict[str, Any]:
    """Mixpanel's `{"event", "properties"}` shape, from that shape or from a flat record."""
    if isinstance(record.get("properties"), dict):
        extra = {k: v for k, v in record.items() if k not in ("event", "properties")}
        return {"event": record.get("event"), "properties": {**record["properties"], **extra}}
    props = {k: v for k, v in record.items() if k != "event" and v is not None}
    return {"event": record.get("event"), "properties": props}


def _cell(column: str, value: str) -> Any:
    if column in TEXT_COLUMNS:
        return value
    if column == "time":
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if number == number and abs(number) != float("inf") else value


def read_events(stream: IO[bytes], fmt: str, *, skip: int = 0) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    """(record number from 1, event or BadLine) for each record after the first `skip`."""
    if fmt == "jsonl":
        for number, raw in enumerate(stream, start=1):
            if number <= skip:
                continue
            text = raw.strip()
            if not text:
                continue
            try:
                record = loads(text)
            except ValueError as exc:
                yield number, BadLine(number, f"invalid JSON: {exc}", text.decode(errors="replace"))
                continue
            if not isinstance(record, dict):
                yield number, BadLine(number, "not a JSON object", text.decode(errors="replace"))
                continue
            yield number, to_event(record)
    elif fmt == "csv":
        text_stream = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        for number, row in enumerate(csv.DictReader(text_stream), start=1):
            if number <= skip:
                continue
            record = {k: _cell(k, v) for k, v in row.items() if k is not None and v not in (None, "")}
            yield number, to_event(record)
    elif fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - pyarrow is the `parquet` extra
            raise RuntimeError("reading Parquet needs pyarrow: pip install 'mixhouse-client[parquet]'") from exc
        number = 0
        for batch in pq.ParquetFile(stream).iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                number += 1
                if number > skip:
                    yield number, to_event(row)
    else:
        raise ValueError(f"unknown format {fmt!r}: expected jsonl, csv or parquet")


def fingerprint(*parts: Any) -> str:
    """Identifies a run's input, so that a state file is used only by the same run."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


class StateFile:
    """A small JSON file written atomically: where an interrupted run stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def save(self, value: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(value))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
