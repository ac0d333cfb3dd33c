"""The catalog's answers kept in memory until the catalog changes: project lookups by token, secret, API
key or id, and whatever else a caller derives from the catalog's rows (a project's Lexicon drops).

A tracking request looked its token's project up in SQLite, and its project's dropped events too: two
queries per request, a fifth of the event loop's time under load (bench/bench_ingest.py). Here each
request first asks the catalog whether anything changed since the answers were kept, which costs one
`PRAGMA data_version` (about 5 µs here) instead of a query and a row conversion per lookup (about 18 µs),
and starts over when it did.

The change check (`change_stamp`) is SQLite's: `data_version` of this thread's connection changes when any
other connection commits (another thread of the server, the `mixhouse` command line, another process),
and the connection's own `total_changes` counts what it wrote itself; nothing is kept while that connection
is inside a transaction (a rollback would leave answers that never were). So a project created, changed or
deleted from anywhere is seen by the next lookup. A catalog that is not SQLite may offer its own check as
a `change_stamp()` method; without one nothing is cached and every lookup asks the catalog.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from mixhouse.domain.catalog import CatalogPort
from mixhouse.domain.project import Project, ServiceAccount

T = TypeVar("T")

# Distinct keys kept between two changes; past it the answers start over (a flood of made-up tokens must
# not grow the process without bound).
MAX_ENTRIES = 10_000

_UNCACHED = object()


def change_stamp(catalog: CatalogPort) -> Hashable | None:
    """A value that differs whenever the catalog may have changed since it was last taken on this thread;
    None when no answer may be kept now."""
    own: Callable[[], Hashable | None] | None = getattr(catalog, "change_stamp", None)
    if own is not None:
        return own()
    conn = catalog.connection()
    if not isinstance(conn, sqlite3.Connection) or conn.in_transaction:
        return None
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

    def current(self) -> CatalogView:
        """A view of the catalog as it is now, for one request: lookups through it are kept, or answered
        from what was kept since the catalog last changed."""
        stamp = change_stamp(self.catalog)
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

    def connection(self) -> sqlite3.Connection:
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


__all__ = ["MAX_ENTRIES", "CachedCatalog", "CatalogView", "change_stamp"]
