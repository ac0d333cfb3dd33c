"""Leases: a named duty (the job runner, a schedule) held by one process at a time.

A lease is one row: its holder and when it expires. Taking it is one statement, an upsert that only
replaces the row when it has expired or is the caller's own, so two processes asking at once cannot both
get it (PostgreSQL serialises the two upserts on the row). The holder renews it well before it expires;
a process that dies stops renewing, and another takes the duty over once `ttl` has passed. Expiry is
measured on the database's clock, so the processes' clocks need not agree."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from mixhouse.cluster.pg import Database

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 30.0
MIN_TTL_SECONDS = 1.0

_TAKE = """
INSERT INTO leases AS l (name, holder, expires_at, taken_at)
VALUES (%(name)s, %(holder)s, clock_timestamp() + make_interval(secs => %(ttl)s), clock_timestamp())
ON CONFLICT (name) DO UPDATE
    SET holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at,
        taken_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.taken_at ELSE EXCLUDED.taken_at END
    WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
RETURNING holder
"""


def new_holder() -> str:
    """A name no other process (here or on another machine) uses: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    def __init__(self, db: Database, holder: str | None = None) -> None:
        self.db = db
        self.holder = holder or new_holder()

    def acquire(self, name: str, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> bool:
        """Take or renew `name` for `ttl_seconds`; False while another live holder has it."""
        ttl = max(MIN_TTL_SECONDS, float(ttl_seconds))
        row = self.db.conn().execute(_TAKE, {"name": name, "holder": self.holder, "ttl": ttl}).fetchone()
        return row is not None

    def release(self, name: str) -> None:
        """Give `name` up at once (a clean shutdown), if this process holds it."""
        self.db.conn().execute("DELETE FROM leases WHERE name = %s AND holder = %s", (name, self.holder))

    def holder_of(self, name: str) -> str | None:
        row = (
            self.db.conn()
            .execute("SELECT holder FROM leases WHERE name = %s AND expires_at > clock_timestamp()", (name,))
            .fetchone()
        )
        return str(row[0]) if row else None


class Duty:
    """Holds one lease while this process performs a duty: `held()` says whether to act now; it renews
    the lease when a third of its time has passed, so a holder that keeps calling never loses it."""

    def __init__(self, leases: Leases, name: str, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.leases = leases
        self.name = name
        self.ttl = max(MIN_TTL_SECONDS, ttl_seconds)
        self._lock = threading.Lock()
        self._renewed_at: float | None = None

    def held(self, now: float) -> bool:
        """`now` is this process's monotonic clock (only to decide when to renew)."""
        with self._lock:
            if self._renewed_at is not None and now - self._renewed_at < self.ttl / 3:
                return True
            if self.leases.acquire(self.name, self.ttl):
                self._renewed_at = now
                return True
            self._renewed_at = None
            return False

    def release(self) -> None:
        with self._lock:
            if self._renewed_at is not None:
                self.leases.release(self.name)
                self._renewed_at = None


class Heartbeat:
    """Renews a duty's lease from a thread while a long step runs (a job may outlast the lease)."""

    def __init__(self, duty: Duty) -> None:
        self.duty = duty
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="mixhouse-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.duty.ttl / 3):
                try:
                    self.duty.leases.acquire(self.duty.name, self.duty.ttl)
                except Exception:  # the database is away: the next beat tries again
                    log.warning("could not renew the lease %r", self.duty.name, exc_info=True)
        finally:
            self.duty.leases.db.close_thread()
