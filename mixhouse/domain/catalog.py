"""The catalog as its callers see it: projects and their credentials, service accounts, and a database
connection for the stores of saved objects. `mixhouse.catalog.Catalog` implements it, on SQLite in the
data folder or on a shared PostgreSQL database (mixhouse/catalogdb)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, Protocol

from mixhouse.catalogdb import Connection
from mixhouse.domain.project import Project, ServiceAccount


class CatalogPort(Protocol):
    def connection(self) -> Connection:
        """This thread's connection to the catalog database (saved objects keep their tables there)."""
        ...

    def project_by_id(self, project_id: int) -> Project | None: ...

    def project_by_token(self, token: str) -> Project | None: ...

    def project_by_secret(self, secret: str) -> Project | None: ...

    def project_by_api_key(self, api_key: str) -> Project | None: ...

    def projects(self) -> list[Project]: ...

    def service_account(self, username: str) -> ServiceAccount | None: ...

    def known_good(self, username: str, secret: str) -> bool:
        """Whether these credentials verified before (no key derivation)."""
        ...

    def verify_service_account(self, username: str, secret: str) -> ServiceAccount | None:
        """The account when the secret is right (a key derivation: call it off the event loop)."""
        ...


class CatalogStore:
    """Base of a capability's tables in the catalog database (annotations, flags, jobs, lookup tables,
    GDPR tokens): its `schema` script (SQLite's dialect, mapped for PostgreSQL) runs once per connection
    (the catalog keeps one connection per thread), and `_write()` is one transaction no other writer
    interleaves with."""

    schema: ClassVar[str]
    # (schema, id of a connection) -> the connection, held so that its id is never reused for another.
    _ready: ClassVar[dict[tuple[str, int], Connection]] = {}

    def __init__(self, catalog: CatalogPort) -> None:
        self._conn = catalog.connection()
        key = (self.schema, id(self._conn))
        if CatalogStore._ready.get(key) is not self._conn:
            self._conn.executescript(self.schema)
            CatalogStore._ready[key] = self._conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._conn.write() as conn:
            yield conn
