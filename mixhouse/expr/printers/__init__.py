"""Printers turn a checked tree into one engine's SQL. One module per engine; the parser knows none of them.

A new engine (e.g. ClickHouse) is a new module with a class taking a `Scope` and offering `filter`,
`segment_key` and `number`, registered in `PRINTERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mixhouse.expr import ast


@dataclass(frozen=True)
class Scope:
    """Where the compiled SQL finds a record's parts. All fields are trusted SQL written by our own code.

    properties_sql       JSON of the record's properties, e.g. "e.properties" (a profile's for profiles)
    time_ms_sql          BIGINT epoch ms of an event, e.g. "e.time_ms"; None for profiles
    distinct_id_sql      VARCHAR id, e.g. "e.distinct_id" or the resolved "ids.canonical_id"
    user_properties_sql  JSON of the user's profile for `user["x"]`; None where there is none (then
                         `user[...]` is refused); the same as properties_sql in a profile query
    timezone             IANA zone in which a date string without an offset is read and keys are rendered
    """

    properties_sql: str
    time_ms_sql: str | None
    distinct_id_sql: str
    user_properties_sql: str | None = None
    timezone: str = "UTC"

    @classmethod
    def events(cls, alias: str = "e", *, user_properties_sql: str | None = None, timezone: str = "UTC") -> Scope:
        return cls(f"{alias}.properties", f"{alias}.time_ms", f"{alias}.distinct_id", user_properties_sql, timezone)

    @classmethod
    def profiles(cls, alias: str = "p", *, timezone: str = "UTC") -> Scope:
        props = f"{alias}.properties"
        return cls(props, None, f"{alias}.distinct_id", props, timezone)


class Printer(Protocol):
    def __init__(self, scope: Scope, text: str = "") -> None: ...

    def filter(self, expr: ast.Expr) -> str: ...

    def segment_key(self, expr: ast.Expr) -> str: ...

    def number(self, expr: ast.Expr) -> str: ...


def printer(dialect: str, scope: Scope, text: str = "") -> Printer:
    # Imported here so that an engine's module is loaded only when that engine is used.
    if dialect == "duckdb":
        from mixhouse.expr.printers.duckdb import DuckDBPrinter

        return DuckDBPrinter(scope, text)
    raise ValueError(f"no expression printer for {dialect!r}")
