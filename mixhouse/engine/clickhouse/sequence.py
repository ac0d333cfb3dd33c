"""Where the ClickHouse engine's event sequence numbers come from.

`seq` is an event's ingestion order: `$insert_id` deduplication keeps the copy with the highest seq, the
dedup marks (`superseded_events`) name rows by (project, seq), and export breaks ties of time by seq. So a
seq must be given once in the whole store. One process counts in memory from the largest stored seq
(`LocalSequence`). Several API processes writing to one ClickHouse would each start from the same largest
seq and give the same numbers to different events, so with `--cluster-url` the numbers come from one
counter row in the shared PostgreSQL database (`SharedSequence`): one UPDATE ... RETURNING per batch takes
a range no other process gets, in the order the processes ask, so a later batch gets higher numbers
whichever process writes it."""

from __future__ import annotations

import threading
from typing import Any, Protocol

import psycopg

from mixhouse.cluster.pg import Database
from mixhouse.errors import Unavailable

# pg_advisory_xact_lock key taken while the counter table is created (any constant no other code uses).
_CREATE_LOCK = 0x6D69_7873_6571_0001


class Sequence(Protocol):
    def start_after(self, largest: int) -> None:
        """Never give a number at or below `largest` (the largest seq already stored)."""
        ...

    def take(self, count: int) -> int:
        """The first of `count` consecutive numbers that nobody else gets."""
        ...

    def close(self) -> None: ...


class LocalSequence:
    """One process writing to the store: a counter in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 1

    def start_after(self, largest: int) -> None:
        with self._lock:
            self._next = max(self._next, largest + 1)

    def take(self, count: int) -> int:
        with self._lock:
            first = self._next
            self._next += count
            return first

    def close(self) -> None:
        pass


class SharedSequence:
    """A counter row of the shared PostgreSQL database, named after the ClickHouse database it numbers."""

    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self.name = name

    def _execute(self, sql: str, params: dict[str, Any]) -> Any:
        try:
            return self._db.conn().execute(sql, params).fetchone()
        except psycopg.Error as exc:
            raise Unavailable(f"PostgreSQL failed while numbering events: {exc}".strip()) from exc

    def start_after(self, largest: int) -> None:
        conn = self._db.conn()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS clickhouse_sequences (name TEXT PRIMARY KEY, next BIGINT NOT NULL)"
                )
        except psycopg.Error as exc:
            raise Unavailable(f"PostgreSQL failed while numbering events: {exc}".strip()) from exc
        self._execute(
            """INSERT INTO clickhouse_sequences AS s (name, next) VALUES (%(name)s, %(next)s)
               ON CONFLICT (name) DO UPDATE SET next = GREATEST(s.next, EXCLUDED.next)
               RETURNING next""",
            {"name": self.name, "next": largest + 1},
        )

    def take(self, count: int) -> int:
        row = self._execute(
            "UPDATE clickhouse_sequences SET next = next + %(n)s WHERE name = %(name)s RETURNING next - %(n)s",
            {"name": self.name, "n": count},
        )
        if row is None:
            raise Unavailable(f"the event counter {self.name!r} is missing from the cluster database")
        return int(row[0])

    def close(self) -> None:
        self._db.close()
