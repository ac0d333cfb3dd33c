"""The catalog's answers kept in memory until the catalog changes: project lookups by token, secret, API
key or id, and whatever else a caller derives from the catalog's rows (a project's Lexicon drops).

A tracking request looked its token's project up in SQLite, and its project's dropped events too: two
queries per request, a fifth of the event loop's time under load (bench/bench_ingest.py). Here each
request first asks whether the catalog changed since the answers were kept, and they start over when it did.

The change check (`change_stamp`) on SQLite in WAL mode (the catalog's mode) reads the header of the
wal-index, the `-shm` file every connection to the database maps in memory (https://www.sqlite.org/walformat.html,
"The WAL-Index Header"): its `iChange` counter grows with every transaction any connection commits (another
thread of the server, the `mixhouse` command line, another process), and its `mxFrame` and salts with every
write to the WAL. The header's page is mapped here too, read-only, so a check is a 48-byte memory read: no
system call, where a pread(2) of the same bytes let the writer thread take the interpreter lock from the
event loop at every /track request (the read releases it), and `PRAGMA data_version` took a read lock on the
file (about 6 µs in a loop, four times that on the event loop of a loaded server). The mapping sees what
SQLite writes there the moment it writes it, from this process or any other: the same bytes a read would
get.

A mapped read past the end of a file kills the process (SIGBUS), and SQLite does truncate the file: when a
connection finds that no other connection, in any process, has the wal-index open, it truncates it before
rebuilding it, to 3 bytes rather than 0 (os_unix.c, `unixLockSharedMemory`: "an arbitrary small number,
less than the -shm header size", so that a truncation to 0 shows the work of something else). Only the
first page is mapped, and a page that the file still begins stays readable: past the file's end it reads
as zeros, the header's `isInit` byte is 0, and the check fails (the lookup goes to the catalog) instead of
crashing. A truncation to 0 by something other than SQLite would fault the server's own SQLite as much:
its connections map the same page and read the header at every transaction. When the file is shorter
than the header as it is opened, it is read with pread(2) until a later look maps it.

The file is opened once and stays open: closing a descriptor of it would drop every POSIX lock SQLite
holds on it in this process (fcntl locks belong to the process, not the descriptor), and another process
(the command line) would then take the wal-index as unused and rebuild it under the server's connections.
Nothing is kept while this thread's connection is inside a transaction (a rollback would leave answers
that never were). So a project created, changed or deleted from anywhere is seen by the next request.
Without the wal-index (another journal mode) the check is `PRAGMA data_version` plus the connection's own
`total_changes`; a catalog that is not SQLite may offer its own check as a `change_stamp()` method, and
without one nothing is cached and every lookup asks the catalog.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from mixhouse.catalogdb import Connection
from mixhouse.domain.catalog import CatalogPort
from mixhouse.domain.project import Project, ServiceAccount

T = TypeVar("T")

# Distinct keys kept between two changes; past it the answers start over (a flood of made-up tokens must
# not grow the process without bound).
MAX_ENTRIES = 10_000

_UNCACHED = object()


class WalIndex:
    """The header of a SQLite database's wal-index, mapped from its file (see the module's docstring). The
    file is looked up again every RECHECK_SECONDS (SQLite rebuilds it only once no connection has the
    database open, and the catalog keeps one open for the life of the process, so this is a safeguard)."""

    HEADER_BYTES = 48  # the first copy of the header (the second follows it)
    RECHECK_SECONDS = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._identity = (0, 0)
        self._checked = 0.0
        self._open()

    @classmethod
    def of(cls, conn: sqlite3.Connection) -> WalIndex | None:
        """The wal-index of the database `conn` has open, when it is in WAL mode and the file is there."""
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        rows = conn.execute("PRAGMA database_list").fetchall()
        database = next((str(file) for _, name, file in rows if name == "main"), "")
        if str(mode).lower() != "wal" or not database:
            return None
        try:
            return cls(Path(database + "-shm"))
        except OSError:
            return None

    def _open(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        stat = os.fstat(fd)
        old_fd, old_map = self._fd, self._map
        self._fd, self._map, self._identity = fd, self._mapping(fd), (stat.st_dev, stat.st_ino)
        self._checked = time.monotonic()
        if old_map is not None:
            old_map.close()
        if old_fd is not None:
            os.close(old_fd)

    def _mapping(self, fd: int) -> mmap.mmap | None:
        try:  # (a file shorter than the header cannot be mapped: it is read until a later look maps it)
            return mmap.mmap(fd, self.HEADER_BYTES, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None

    def header(self) -> bytes | None:
        """The header as it is now, or None when it cannot be read (not initialised, or the file is gone)."""
        if time.monotonic() - self._checked >= self.RECHECK_SECONDS:
            with self._lock:
                try:
                    stat = os.stat(self.path)
                    if (stat.st_dev, stat.st_ino) != self._identity:
                        self._open()
                    elif self._map is None and self._fd is not None:
                        self._map = self._mapping(self._fd)
                    self._checked = time.monotonic()
                except OSError:
                    return None
        mapped = self._map
        try:
            if mapped is not None:
                head = mapped[: self.HEADER_BYTES]
            elif self._fd is not None:
                head = os.pread(self._fd, self.HEADER_BYTES, 0)
            else:
                return None
        except (OSError, ValueError):  # closed by a concurrent reopen: the next check reads the new file
            return None
        return head if len(head) == self.HEADER_BYTES and head[12] == 1 else None  # isInit


def _sqlite(conn: object) -> sqlite3.Connection | None:
    """The sqlite3 connection under the catalog's connection (mixhouse/catalogdb wraps it), if it is one."""
    raw = getattr(conn, "raw", conn)
    return raw if isinstance(raw, sqlite3.Connection) else None


def change_stamp(catalog: CatalogPort, wal_index: WalIndex | None = None) -> Hashable | None:
    """A value that differs whenever the catalog may have changed since it was last taken on this thread;
    None when no answer may be kept now. `wal_index`: the catalog's, when it has one."""
    own: Callable[[], Hashable | None] | None = getattr(catalog, "change_stamp", None)
    if own is not None:
        return own()
    conn = _sqlite(catalog.connection())
    if conn is None or conn.in_transaction:
        return None
    if wal_index is not None:
        head = wal_index.header()
        if head is not None:
            return head
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return (version, conn.total_changes)


class _Kept(threading.local):
    def __init__(self) -> None:
        self.stamp: Hashable | None = None
        self.entries: dict[Hashable, Any] = {}


class CachedCatalog:
    """The catalog's answers, kept per thread (SQLite connections are per thread, and so are their change
    stamps) until the catalog changes. `current()` checks for a change once and answers from what is kept."""

    def __init__(self, catalog: CatalogPort, max_entries: int = MAX_ENTRIES) -> None:
        self.catalog = catalog
        self.max_entries = max_entries
        self._kept = _Kept()
        conn = _sqlite(catalog.connection()) if getattr(catalog, "change_stamp", None) is None else None
        self._wal_index = WalIndex.of(conn) if conn is not None else None

    def current(self) -> CatalogView:
        """A view of the catalog as it is now, for one request: lookups through it are kept, or answered
        from what was kept since the catalog last changed."""
        stamp = change_stamp(self.catalog, self._wal_index)
        kept = self._kept
        if stamp is None:
            kept.stamp, kept.entries = None, {}
            return CatalogView(self.catalog, None)
        if stamp != kept.stamp or len(kept.entries) >= self.max_entries:
            kept.stamp, kept.entries = stamp, {}
        return CatalogView(self.catalog, kept.entries)


class CatalogView:
    """A CatalogPort whose project lookups, and `remember`ed values, come from `entries` (None: none kept)."""

    def __init__(self, catalog: CatalogPort, entries: dict[Hashable, Any] | None) -> None:
        self.catalog = catalog
        self._entries = entries

    def remember(self, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()`, or what it returned for `key` since the catalog last changed."""
        entries = self._entries
        if entries is None:
            return compute()
        value = entries.get(key, _UNCACHED)
        if value is _UNCACHED:
            value = entries[key] = compute()
        return value  # type: ignore[no-any-return]

    # -- CatalogPort ------------------------------------------------------------------------------

    def connection(self) -> Connection:
        return self.catalog.connection()

    def project_by_id(self, project_id: int) -> Project | None:
        return self.remember(("id", project_id), lambda: self.catalog.project_by_id(project_id))

    def project_by_token(self, token: str) -> Project | None:
        return self.remember(("token", token), lambda: self.catalog.project_by_token(token))

    def project_by_secret(self, secret: str) -> Project | None:
        return self.remember(("secret", secret), lambda: self.catalog.project_by_secret(secret))

    def project_by_api_key(self, api_key: str) -> Project | None:
        return self.remember(("api_key", api_key), lambda: self.catalog.project_by_api_key(api_key))

    def projects(self) -> list[Project]:
        return self.catalog.projects()

    def service_account(self, username: str) -> ServiceAccount | None:
        return self.catalog.service_account(username)

    def known_good(self, username: str, secret: str) -> bool:
        return self.catalog.known_good(username, secret)

    def verify_service_account(self, username: str, secret: str) -> ServiceAccount | None:
        return self.catalog.verify_service_account(username, secret)


__all__ = ["MAX_ENTRIES", "CachedCatalog", "CatalogView", "WalIndex", "change_stamp"]
