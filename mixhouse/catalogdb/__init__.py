"""The catalog's database: one interface, two implementations.

- SQLite (`catalog.sqlite3` in the data folder, the default): `mixhouse/catalogdb/sqlite.py`.
- PostgreSQL (`--catalog-url postgresql://...`, shared by several processes): `mixhouse/catalogdb/postgres.py`.

Every store writes its SQL once, in the dialect both accept: `?` placeholders (rewritten to `%s` for
PostgreSQL), `INSERT ... ON CONFLICT`, `RETURNING`, `CAST(? AS TEXT) IS NULL` for an optional parameter.
Its DDL is written for SQLite; PostgreSQL gets it with the types that differ mapped (`REAL` -> `DOUBLE
PRECISION`, `BLOB` -> `BYTEA`, `INTEGER` -> `BIGINT`, `INTEGER PRIMARY KEY AUTOINCREMENT` -> an identity
column, and an implicit `rowid` identity column, which SQLite tables have too). Transactions go through
`write()` (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's transaction under the catalog's advisory lock: one
writer at a time on both) and `read()` (one snapshot). A violated constraint raises `IntegrityError`
naming the table and columns on both."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from mixhouse.errors import BadRequest, MixhouseError

Params = Sequence[Any]


class IntegrityError(BadRequest):
    """A constraint refused a write: `table` and `columns` say which (when the database says). Stores turn
    the ones they expect into their own messages; one they do not expect is a 400 with the database's."""

    code = "constraint_violated"

    def __init__(self, message: str, table: str = "", columns: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.table = table
        self.columns = columns


class DatabaseError(MixhouseError):
    """The catalog database failed a statement (other than a constraint or a lost connection)."""

    code = "catalog_database_error"


class Cursor(Protocol):
    """The rows of one statement (sqlite3's and psycopg's cursors both are one)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """One thread's connection to the catalog database."""

    dialect: str  # "sqlite" or "postgresql"
    errors: tuple[type[Exception], ...]  # the driver's own errors (a locked file, a lost server, ...)

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """One statement, autocommitted unless inside `write()` or `read()`."""
        ...

    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    def executescript(self, ddl: str) -> None:
        """DDL written for SQLite (CREATE ... IF NOT EXISTS), run in this database's dialect."""
        ...

    def write(self) -> AbstractContextManager[Connection]:
        """One transaction that no other writer interleaves with (re-entered: the outer one)."""
        ...

    def read(self) -> AbstractContextManager[Connection]:
        """Several reads from one snapshot."""
        ...

    def columns(self, table: str) -> set[str]:
        """The table's column names (empty when there is no such table)."""
        ...


class Database(Protocol):
    """The catalog database: a connection per thread."""

    dialect: str
    where: str  # for messages: the file, or the server (without its password)

    def connection(self) -> Connection: ...

    def close(self) -> None: ...


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))
