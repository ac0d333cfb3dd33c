"""Reading and writing rows of the ClickHouse engine's tables from Python: the few helpers the writer,
identity maintenance and deletions share. Values reach SQL only as server-side parameters or as
JSONEachRow data, never spliced into the text."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from mixhouse.engine.clickhouse.driver import Driver


class Store:
    """A driver plus the database name and a version clock for ReplacingMergeTree rows."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.db = driver.database
        self._clock = threading.Lock()
        self._last_version = 0

    def table(self, name: str) -> str:
        return f"{self.db}.{name}"

    def version(self) -> int:
        """A version newer than any given before by this process (nanoseconds since the epoch): the latest
        insert of a key wins in a ReplacingMergeTree, also across restarts."""
        with self._clock:
            self._last_version = max(time.time_ns(), self._last_version + 1)
            return self._last_version

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self.driver.arrow(sql, params).to_pylist())

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, token: bool = True) -> int:
        """Insert `rows` (values in `columns` order). With `token`, the insert carries an
        `insert_deduplication_token` derived from its content, so a retry of the same insert is stored once."""
        body = b"".join(orjson.dumps(dict(zip(columns, row, strict=True))) + b"\n" for row in rows)
        if not body:
            return 0
        settings: dict[str, Any] = {"max_partitions_per_insert_block": 0, "async_insert": 0}
        if token:
            settings["insert_deduplication_token"] = f"{table}:{hashlib.sha256(body).hexdigest()}"
        self.driver.insert(self.table(table), tuple(columns), body, settings)
        return body.count(b"\n")
