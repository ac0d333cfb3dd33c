"""Connections to the shared PostgreSQL database and its migrations.

Migrations are numbered steps, each applied once and recorded in `mixhouse_schema`; every open runs the
missing ones inside one transaction holding an advisory lock, so two processes starting at the same
moment apply each step once (the second waits, then finds nothing to do)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from mixhouse.errors import SettingsError, Unavailable
from mixhouse.settings import Settings

# pg_advisory_xact_lock key of the migrations (any constant no other code uses).
MIGRATION_LOCK = 0x6D697868_6F757365 & 0x7FFFFFFFFFFFFFFF

# Append only: a step, once released, is never edited (a database that applied it will not run it again).
MIGRATIONS: tuple[str, ...] = (
    # 1: leases
    """
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        taken_at   TIMESTAMPTZ NOT NULL
    )
    """,
    # 2: rate-limit windows: one row per admitted request
    """
    CREATE TABLE rate_hits (
        project_id BIGINT NOT NULL,
        bucket     TEXT NOT NULL,
        at         TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX rate_hits_window ON rate_hits (project_id, bucket, at)
    """,
)


def coordination_url(settings: Settings) -> str | None:
    """The database the processes coordinate through: `cluster_url`, else the shared catalog's."""
    return settings.cluster_url or settings.catalog_url


def check_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(f"a PostgreSQL URL starts with postgresql://: {url!r}")
    return url


def connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(check_url(url), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise Unavailable(f"PostgreSQL is not reachable: {exc}".strip()) from exc


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply the missing steps; the schema version afterwards."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS mixhouse_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)")
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM mixhouse_schema").fetchone()
        done = int(row[0]) if row else 0
        for version, step in enumerate(MIGRATIONS[done:], start=done + 1):
            for statement in step.split(";"):
                if statement.strip():
                    conn.execute(statement)  # literal SQL from MIGRATIONS
            conn.execute("INSERT INTO mixhouse_schema VALUES (%s, now())", (version,))
    return len(MIGRATIONS)


class Database:
    """One connection per thread to the shared database, migrated on the first connection."""

    def __init__(self, url: str) -> None:
        self.url = check_url(url)
        self._local = threading.local()
        self._migrated = False
        self._lock = threading.Lock()
        self._all: list[psycopg.Connection[Any]] = []

    def conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken):
            self.forget(conn)
            conn = None
        if conn is None:
            conn = connect(self.url)
            with self._lock:
                if not self._migrated:
                    migrate(conn)
                    self._migrated = True
                self._all.append(conn)
            self._local.conn = conn
        return conn

    def forget(self, conn: psycopg.Connection[Any]) -> None:
        """Drop a connection that failed (the next `conn()` of its thread opens a new one)."""
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        conn.close()

    def close_thread(self) -> None:
        """Close this thread's connection (a thread that ends: its connection would stay open)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            self.forget(conn)

    def close(self) -> None:
        """Close every thread's connection (a later `conn()` opens a new one)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
