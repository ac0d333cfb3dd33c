"""Reading a warehouse table as Arrow batches: PostgreSQL through ADBC's libpq driver (binary COPY straight
into Arrow), DuckDB database files and Parquet files through DuckDB.

Every row comes with `_mp_row_hash`, the MD5 of the row as JSON, computed by the warehouse (Mixpanel's
Redshift Mirror does the same with MD5 of the row's values): it is the imported event's `$insert_id` and
what Mirror compares between runs. A time_based read asks only for rows whose insert time is at or after
the cursor, ordered by it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from mixhouse.errors import BadRequest
from mixhouse.imports.model import SourceType, WarehouseSource

HASH_COLUMN = "_mp_row_hash"


class SourceError(Exception):
    """The warehouse could not be read (unreachable, refused, no such table): the run fails with this."""


@dataclass(frozen=True)
class Read:
    table_params: dict[str, Any]
    since_column: str | None = None  # time_based: rows with since_column >= since
    since: Any = None  # a cursor (see cursor_value)
    batch_rows: int = 50_000


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def cursor_of(value: Any) -> dict[str, Any] | None:
    """A JSON cursor for the largest insert time seen (an Arrow scalar's value)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return {"type": "timestamp", "value": value.isoformat()}
        return {"type": "timestamptz", "value": value.astimezone(dt.UTC).isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool):
        raise SourceError("the insert time column must be a timestamp, a date or a number")
    if isinstance(value, int | float):
        return {"type": "number", "value": value}
    raise SourceError("the insert time column must be a timestamp, a date or a number")


def cursor_value(cursor: dict[str, Any]) -> Any:
    kind, value = cursor["type"], cursor["value"]
    if kind in ("timestamp", "timestamptz"):
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return value


def _select(from_sql: str, hash_sql: str, read: Read, param: str) -> tuple[str, list[Any]]:
    sql = f"SELECT t.*, {hash_sql} AS {quote_ident(HASH_COLUMN)} FROM {from_sql} AS t"
    args: list[Any] = []
    if read.since_column is not None:
        column = quote_ident(read.since_column)
        if read.since is not None:
            sql += f" WHERE t.{column} >= {param}"
            args.append(cursor_value(read.since))
        else:
            sql += f" WHERE t.{column} IS NOT NULL"
        sql += f" ORDER BY t.{column}"
    return sql, args


def _qualified(table_params: dict[str, Any]) -> str:
    table = quote_ident(table_params["table_name"])
    schema = table_params.get("schema_name")
    return f"{quote_ident(schema)}.{table}" if schema else table


class PostgresReader:
    def __init__(self, source: WarehouseSource) -> None:
        self.source = source

    def uri(self) -> str:
        p = self.source.params
        auth = quote(str(p["user"]), safe="")
        if self.source.password is not None:
            auth += ":" + quote(self.source.password, safe="")
        host = str(p["host"])
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return (
            f"postgresql://{auth}@{host}:{int(p['port'])}/{quote(str(p['database']), safe='')}?sslmode={p['sslmode']}"
        )

    def _scrub(self, exc: BaseException) -> SourceError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.source.password:
            text = text.replace(self.source.password, "***").replace(quote(self.source.password, safe=""), "***")
        return SourceError(f"PostgreSQL: {text}")

    def batches(self, read: Read) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as pg

        sql, args = _select(_qualified(read.table_params), "md5(CAST(row_to_json(t) AS text))", read, "$1")
        try:
            conn = pg.connect(self.uri(), autocommit=True)
        except (adbc_driver_manager.Error, OSError) as exc:
            raise self._scrub(exc) from None
        try:
            with conn.cursor() as cur:
                cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(16 << 20)})
                cur.execute("SET TIME ZONE 'UTC'")
                try:
                    cur.execute(sql, parameters=tuple(args) if args else None)
                    reader = cur.fetch_record_batch()
                    for batch in reader:
                        yield from _split(batch, read.batch_rows)
                except adbc_driver_manager.Error as exc:
                    raise self._scrub(exc) from None
        finally:
            conn.close()


class DuckDBReader:
    """A DuckDB database file (read only) or Parquet files, under the warehouse files folder."""

    def __init__(self, source: WarehouseSource, files_dir: Path | None) -> None:
        self.source = source
        self.files_dir = files_dir

    def batches(self, read: Read) -> Iterator[pa.RecordBatch]:
        import duckdb

        base = resolve_path(self.files_dir, str(self.source.params["path"]))
        hash_sql = "md5(CAST(to_json(t) AS VARCHAR))"
        try:
            if self.source.type is SourceType.DUCKDB:
                if not base.is_file():
                    raise SourceError(f"DuckDB: no database file {self.source.params['path']!r}")
                conn = duckdb.connect(str(base), read_only=True)
                from_sql = _qualified(read.table_params)
            else:
                pattern = resolve_path(base, str(read.table_params["table_name"]))
                conn = duckdb.connect()
                from_sql = "read_parquet(" + _literal(str(pattern)) + ")"
            try:
                sql, args = _select(from_sql, hash_sql, read, "$1")
                reader = conn.sql(sql, params=args or None).to_arrow_reader(read.batch_rows)
                yield from reader
            finally:
                conn.close()
        except duckdb.Error as exc:
            raise SourceError(f"DuckDB: {str(exc).strip().splitlines()[0]}") from None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _split(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


_GLOB = re.compile(r"[*?\[]")


def resolve_path(root: Path | None, relative: str) -> Path:
    """`relative` under `root`, refused when it leaves it (or when file sources are off: no root)."""
    if root is None:
        raise BadRequest("file sources are off on this server (the warehouse_files_dir setting is not set)")
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise BadRequest(f"path must be relative to the server's warehouse files folder, got {relative!r}")
    resolved = (root / candidate).resolve() if not _GLOB.search(relative) else root.resolve() / candidate
    if not resolved.is_relative_to(root.resolve()):
        raise BadRequest(f"path must stay inside the server's warehouse files folder, got {relative!r}")
    return resolved


def reader_for(source: WarehouseSource, files_dir: Path | None) -> PostgresReader | DuckDBReader:
    if source.type is SourceType.POSTGRES:
        return PostgresReader(source)
    return DuckDBReader(source, files_dir)
