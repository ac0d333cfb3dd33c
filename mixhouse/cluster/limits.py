"""Rate limits counted across processes: the request windows (per second, minute, hour, day) of every
mixhouse process behind one load balancer, in PostgreSQL.

Each admitted request is one row of `rate_hits` (project, budget, time). Admitting a request is one
transaction that takes an advisory lock on (project, budget), counts the rows inside each window and
inserts the new row, so the check and the count are one step across processes, exactly as the
in-process limiter's lock makes them one step across threads. Times are the database's clock. Rows
older than the longest window of the rule are deleted as they age out.

Concurrency slots (`concurrent`) and ingestion volume (`bytes_per_minute`) stay per process: they are
checked by the in-process limiter this one extends.

While the database cannot be reached, the windows are counted in this process alone (each process then
allows the whole budget) and a warning is logged at most once a minute: a coordination outage must not
refuse, or fail, every request of every project."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import psycopg

from mixhouse.cluster.pg import Database, coordination_url
from mixhouse.domain.limits import _BUCKET, _WINDOW_NAMES, Api, Limiter, Permit, Rule, _ceil, _limit_message
from mixhouse.errors import RateLimited, Unavailable
from mixhouse.settings import Settings

log = logging.getLogger(__name__)
WARN_EVERY_SECONDS = 60.0
RETRY_SECONDS = 5.0


class SharedLimiter(Limiter):
    blocking = True  # a round trip to PostgreSQL per admission

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self._fallback = Limiter()  # the windows, while the database is away
        self._warned_at: float | None = None
        self._away_until = 0.0  # monotonic time before which the database is not tried again

    def acquire(self, project_id: int, api: Api, rule: Rule, *, size: int = 0) -> Permit:
        windows = rule.windows()
        # concurrency and bytes in this process; the windows only here, counted once across processes
        local = replace(rule, per_second=None, per_minute=None, per_hour=None, per_day=None)
        permit = super().acquire(project_id, api, local, size=size)
        if not windows:
            return permit
        try:
            if time.monotonic() < self._away_until or not self._counted_shared(project_id, api, windows):
                windows_only = replace(rule, concurrent=None, bytes_per_minute=None)
                self._fallback.acquire(project_id, api, windows_only)
        except BaseException:
            self.release(permit)
            raise
        return permit

    def _counted_shared(self, project_id: int, api: Api, windows: list[tuple[int, float]]) -> bool:
        """Admit across processes (RateLimited when over); False when the database could not be asked."""
        try:
            self._shared(project_id, api, windows)
        except (psycopg.Error, Unavailable) as exc:
            self._database_away(exc)
            return False
        return True

    def _database_away(self, exc: Exception) -> None:
        """Count in this process for RETRY_SECONDS before trying the database again: while it is down, a
        request must not wait out a connection timeout each."""
        now = time.monotonic()
        self._away_until = now + RETRY_SECONDS
        if self._warned_at is None or now - self._warned_at > WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate limits counted in this process alone: the cluster database is away (%s)", exc)

    def _shared(self, project_id: int, api: Api, windows: list[tuple[int, float]]) -> None:
        bucket = str(_BUCKET.get(api, api))
        conn = self.db.conn()
        try:
            self._count(conn, project_id, api, bucket, windows)
        except psycopg.OperationalError:
            self.db.forget(conn)
            raise

    def _count(
        self, conn: psycopg.Connection[Any], project_id: int, api: Api, bucket: str, windows: list[tuple[int, float]]
    ) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (bucket, project_id))
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            now: datetime = row[0]
            longest = max(seconds for _, seconds in windows)
            conn.execute(
                "DELETE FROM rate_hits WHERE project_id = %s AND bucket = %s AND at <= %s",
                (project_id, bucket, now - timedelta(seconds=longest)),
            )
            for limit, seconds in windows:
                # the limit-th most recent hit inside the window: when it ages out, one more may pass
                oldest = conn.execute(
                    "SELECT at FROM rate_hits WHERE project_id = %s AND bucket = %s AND at > %s"
                    " ORDER BY at DESC OFFSET %s LIMIT 1",
                    (project_id, bucket, now - timedelta(seconds=seconds), limit - 1),
                ).fetchone()
                if oldest is not None:
                    wait = (oldest[0] + timedelta(seconds=seconds) - now).total_seconds()
                    per = _WINDOW_NAMES[seconds]
                    raise RateLimited(_limit_message(api, f"{limit} {{noun}} per {per}"), retry_after=_ceil(wait))
            conn.execute("INSERT INTO rate_hits VALUES (%s, %s, %s)", (project_id, bucket, now))


def shared_limiter(settings: Settings) -> Limiter | None:
    """The limiter of `--cluster-url` or, without it, of a shared catalog's database (None: the in-process
    one). It connects at its first request."""
    url = coordination_url(settings)
    return SharedLimiter(Database(url)) if url else None
