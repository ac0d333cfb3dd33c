"""The catalog in one SQLite file beside the event store (the default).

SQLite because the catalog must be writable by the CLI while a server runs on the same data dir, and
every change must be visible to the server at once. WAL, synchronous=FULL (durable on commit), foreign
keys enforced; a writer waits up to 30 s for another's lock."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mixhouse.catalogdb import Cursor, IntegrityError, Params

_UNIQUE = re.compile(r"(?:UNIQUE|NOT NULL|PRIMARY KEY) constraint failed: (.+)$")


def integrity_error(exc: sqlite3.IntegrityError) -> IntegrityError:
    """SQLite's "UNIQUE constraint failed: projects.token" as (projects, (token,))."""
    text = str(exc)
    match = _UNIQUE.search(text)
    if match is None:
        return IntegrityError(text)
    pairs = [part.strip().split(".", 1) for part in match.group(1).split(",")]
    table = pairs[0][0] if pairs and len(pairs[0]) == 2 else ""
    return IntegrityError(text, table, tuple(p[1] for p in pairs if len(p) == 2))


class SQLiteConnection:
    dialect = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            self.raw.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc) from exc

    def executescript(self, ddl: str) -> None:
        self.raw.executescript(ddl)

    @contextmanager
    def write(self) -> Iterator[SQLiteConnection]:
        if self.raw.in_transaction:
            yield self
            return
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.raw.execute("COMMIT")
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise

    @contextmanager
    def read(self) -> Iterator[SQLiteConnection]:
        if self.raw.in_transaction:
            yield self
            return
        self.raw.execute("BEGIN")
        try:
            yield self
        finally:
            self.raw.execute("COMMIT")

    def columns(self, table: str) -> set[str]:
        return {str(row[1]) for row in self.raw.execute(f"PRAGMA table_info({table})")}


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._local = threading.local()

    def connection(self) -> SQLiteConnection:
        conn: SQLiteConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            raw = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=FULL")
            raw.execute("PRAGMA foreign_keys=ON")
            conn = SQLiteConnection(raw)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Nothing to do: each thread's connection closes with its thread (sqlite3 connections may only
        be used, and closed, by the thread that made them)."""
