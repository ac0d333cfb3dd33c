"""Run compiled expressions on a real DuckDB, next to the reference interpreter."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest

from mixhouse.engine.duckdb import property_columns
from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_number, compile_segment_key
from mixhouse.engine.duckdb.schema import SCHEMA
from mixhouse.expr import Expr
from mixhouse.expr import interpreter as interp


@dataclass
class Outcome:
    passes: bool
    keys: list[str]
    number: float | None


class Runner:
    """Loads records into the real schema and evaluates one expression over all of them. With `layout`
    "columns", event properties are also put in slot columns (property_columns.py, as a store upgraded
    by `migrate`) and read from there; with "json", from the JSON document only."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, layout: str = "json") -> None:
        self.conn = conn
        self.layout = layout

    def load(self, events: Sequence[dict[str, Any]], users: Sequence[dict[str, Any] | None] | None = None) -> None:
        self.conn.execute("DELETE FROM events; DELETE FROM profiles")
        rows = [
            (i, int(ev.get("time_ms", 0)), str(ev.get("distinct_id", f"d{i}")), json.dumps(ev.get("properties", {})))
            for i, ev in enumerate(events)
        ]
        if rows:
            self.conn.executemany(
                "INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties) VALUES (1, ?, ?, 'e', ?, NULL, ?)",
                rows,
            )
        for i, user in enumerate(users or []):
            if user is not None:
                did = str(events[i].get("distinct_id", f"d{i}"))
                self.conn.execute("INSERT OR REPLACE INTO profiles VALUES (1, ?, ?, 0)", [did, json.dumps(user)])
        self.conn.execute("DELETE FROM property_slots; DELETE FROM property_layout")
        if self.layout == "columns":
            property_columns.migrate(self.conn)

    def _scope(self, scope: Scope) -> Scope:
        if self.layout != "columns" or scope.time_ms_sql is None:
            return scope
        slots = property_columns.ready_slots(self.conn, 1)
        assert len(slots) == min(property_columns.SLOTS, len(self._keys())), "every key is read from columns"
        return scope.with_slots(slots)

    def _keys(self) -> set[str]:
        rows = self.conn.execute("SELECT DISTINCT unnest(json_keys(properties)) FROM events").fetchall()
        return {r[0] for r in rows}

    def run(self, expr: Expr, scope: Scope) -> list[Outcome]:
        scope = self._scope(scope)
        sql = (
            f"SELECT {compile_filter(expr, scope)}, {compile_segment_key(expr, scope)}, {compile_number(expr, scope)} "
            "FROM events e LEFT JOIN profiles u ON u.project_id = e.project_id AND u.distinct_id = e.distinct_id "
            "ORDER BY e.seq"
        )
        return [Outcome(bool(f), sorted(k), n) for f, k, n in self.conn.execute(sql).fetchall()]

    def run_profiles(self, expr: Expr, scope: Scope) -> list[Outcome]:
        sql = (
            f"SELECT {compile_filter(expr, scope)}, {compile_segment_key(expr, scope)}, {compile_number(expr, scope)} "
            "FROM profiles p ORDER BY p.distinct_id"
        )
        return [Outcome(bool(f), sorted(k), n) for f, k, n in self.conn.execute(sql).fetchall()]


def expected(expr: Expr, record: dict[str, Any], user: dict[str, Any] | None = None, timezone: str = "UTC") -> Outcome:
    return Outcome(
        interp.passes(expr, record, user=user, timezone=timezone),
        sorted(interp.segment_keys(expr, record, user=user, timezone=timezone)),
        interp.number_value(expr, record, user=user, timezone=timezone),
    )


def event_scope(timezone: str = "UTC") -> Scope:
    return Scope.events("e", user_properties_sql="u.properties", timezone=timezone)


@pytest.fixture(scope="session")
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute(SCHEMA)
    property_columns.ensure_tables(c)
    yield c
    c.close()


@pytest.fixture(params=["json", "columns"])
def runner(conn: duckdb.DuckDBPyConnection, request: pytest.FixtureRequest) -> Runner:
    return Runner(conn, request.param)
