"""How the ClickHouse engine reaches ClickHouse: a small driver interface with two implementations that
run the same SQL (server-side parameters written `{name:Type}`, data inserted as JSONEachRow):

- `ChDBDriver`: ClickHouse in this process (chDB) on a persistent folder, a single-machine store;
- `HTTPDriver`: a ClickHouse server or cluster over HTTP (clickhouse-connect).

Every failure of the store surfaces as `DriverError`, so the engine can turn it into Unavailable (503,
retryable) without knowing which driver ran.

A read run under a request's deadline (`mixhouse.domain.limits.query_deadline`) carries the time left as
ClickHouse's `max_execution_time` with `timeout_overflow_mode = 'throw'`, so ClickHouse itself stops the
query at the deadline (on every shard of a cluster) and the driver raises `DriverTimeout`, which the
engine answers as the embedded engine does: QueryTimedOut (504)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from mixhouse.domain.limits import remaining_seconds

log = logging.getLogger(__name__)


class DriverError(Exception):
    """ClickHouse refused or failed a statement (the message is ClickHouse's)."""


class DriverTimeout(DriverError):
    """The statement ran past the request's deadline (ClickHouse's TIMEOUT_EXCEEDED, or no time was left)."""


_TIMEOUT_CODES = ("(TIMEOUT_EXCEEDED)", "Code: 159.")


def driver_error(message: str) -> DriverError:
    return DriverTimeout(message) if any(c in message for c in _TIMEOUT_CODES) else DriverError(message)


def deadline_settings() -> dict[str, Any]:
    """The query settings that give ClickHouse the current deadline (none without one). ClickHouse takes
    `max_execution_time` in seconds with a fraction; no time left at all raises here, before the query."""
    remaining = remaining_seconds()
    if remaining is None:
        return {}
    if remaining <= 0.001:
        raise DriverTimeout("the query's deadline passed before it ran")
    return {"max_execution_time": round(remaining, 3), "timeout_overflow_mode": "throw"}


class Driver(Protocol):
    database: str
    # Whether the engine may keep scratch tables of its own on the store (large exports stage their rows):
    # true when one process owns the store, so tables left by a crash can be dropped at the next start.
    staging: bool

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, INSERT ... SELECT, mutations)."""
        ...

    def arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """The result of a SELECT as an Arrow table."""
        ...

    def insert(self, table: str, columns: tuple[str, ...], rows: bytes, settings: Mapping[str, Any]) -> None:
        """Insert JSONEachRow `rows` (one object per line, keys `columns`) with these query settings."""
        ...

    def close(self) -> None: ...


def _settings_sql(settings: Mapping[str, Any]) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if not key.replace("_", "").isalnum():
            raise ValueError(f"not a setting name: {key!r}")
        literal = (
            str(int(value))
            if isinstance(value, bool | int)
            else repr(value)
            if isinstance(value, float)
            else "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
        )
        parts.append(f"{key} = {literal}")
    return " SETTINGS " + ", ".join(parts)


_TSV = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _literal(value: Any) -> str:
    """A value as a ClickHouse literal inside an array or tuple parameter."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ",".join(_literal(v) for v in value) + ")"
    if value is None:
        return "NULL"
    return str(int(value)) if isinstance(value, bool) else str(value)


def param_text(value: Any) -> str:
    """A parameter's value as ClickHouse reads it from text: a scalar string escaped as in TSV (the server
    unescapes `\\`, `\\t`, ...), arrays and tuples as literals."""
    if isinstance(value, str):
        return value.translate(_TSV)
    if isinstance(value, list | tuple):
        return _literal(value)
    return _literal(value)


class ChDBDriver:
    """chDB keeps one ClickHouse instance per process, so statements are serialised here: results are
    read whole (the engine reads large results in windows)."""

    staging = True  # one process owns a chDB folder

    def __init__(self, path: Path, database: str = "mixhouse") -> None:
        from chdb import session

        self.database = database
        self._lock = threading.Lock()
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._session = session.Session(str(path))  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise DriverError(str(exc)) from exc
        self.command(f"CREATE DATABASE IF NOT EXISTS {database}")

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None, *, deadline: bool = False) -> Any:
        with self._lock:
            if deadline:  # worked out once the statement has the instance: waiting for it took time too
                sql = sql.rstrip().rstrip(";") + "\n" + _settings_sql(deadline_settings())
            try:
                return self._session.query(  # type: ignore[no-untyped-call]
                    sql, fmt, params={k: param_text(v) for k, v in params.items()} if params else None
                )
            except Exception as exc:
                if fmt == "ArrowTable":
                    self._reset_output()
                raise driver_error(str(exc).strip()) from exc

    def _reset_output(self) -> None:
        """chDB 4.4 keeps the Arrow output of a query that failed midway (a timeout, `throwIf`) and hands
        its bytes to the next Arrow query, which then fails to parse ("Invalid flatbuffers message"); a
        statement in another format clears it."""
        try:
            self._session.query("SELECT 1", "CSV")  # type: ignore[no-untyped-call]
        except Exception:
            log.warning("chDB: clearing the output of a failed query failed", exc_info=True)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        result = self._run(sql, "ArrowTable", params, deadline=True)
        assert isinstance(result, pa.Table)
        return result

    def insert(self, table: str, columns: tuple[str, ...], rows: bytes, settings: Mapping[str, Any]) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}){_settings_sql(settings)} FORMAT JSONEachRow\n"
        self._run(sql + rows.decode(), "CSV", None)

    def close(self) -> None:
        with self._lock:
            self._session.close()  # type: ignore[no-untyped-call]


class HTTPDriver:
    """A ClickHouse server (or a cluster's load balancer) over HTTP; clickhouse-connect pools connections
    and is safe to share between threads."""

    # Several processes may share the server (and a load balancer may send each statement to another
    # node), so the engine keeps no scratch tables there.
    staging = False

    def __init__(self, url: str, database: str = "mixhouse", user: str = "default", password: str = "") -> None:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        self.database = database
        self._errors: tuple[type[BaseException], ...] = (ClickHouseError, OSError)
        try:
            self._client = clickhouse_connect.get_client(
                dsn=url, username=user, password=password, autogenerate_session_id=False
            )
            self._client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        except self._errors as exc:
            raise DriverError(str(exc)) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """clickhouse-connect's `command` always puts parameters in the URL, which a server refuses past its
        `http_max_uri_size` (1 MiB by default): the dedup keys of a large batch and an engage id list are
        larger. A statement with parameters goes through `raw_query`, which moves long parameters into a
        multipart/form-data body."""
        try:
            if params:
                self._client.raw_query(sql, parameters=dict(params))
            else:
                self._client.command(sql)
        except self._errors as exc:
            raise DriverError(str(exc)) from exc

    def arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            settings = deadline_settings()
            table = self._client.query_arrow(sql, parameters=dict(params) if params else None, settings=settings)
        except self._errors as exc:
            raise driver_error(str(exc)) from exc
        assert isinstance(table, pa.Table)
        return table

    def insert(self, table: str, columns: tuple[str, ...], rows: bytes, settings: Mapping[str, Any]) -> None:
        try:
            self._client.raw_insert(table, list(columns), insert_block=rows, settings=dict(settings), fmt="JSONEachRow")
        except self._errors as exc:
            raise DriverError(str(exc)) from exc

    def close(self) -> None:
        self._client.close()
