"""JQL's aggregate shapes on DuckDB (mixhouse/jql/pushdown.py): the events a scan would read, grouped, with
counts, extremes and the ordered numbers a sum folds, in one statement."""

from __future__ import annotations

from typing import Any

import duckdb

from mixhouse.engine.duckdb.printer import quote
from mixhouse.engine.duckdb.scan import matching_events
from mixhouse.jql.pushdown import AggregateRow, AggregateSpec, KeyPart, Measure

_FAR = 2**62


def _pointer(name: str) -> str:
    return quote("/" + name.replace("~", "~0").replace("/", "~1"))


def _key_sql(part: KeyPart) -> str:
    if part.field == "name":
        return "e.event"
    if part.field == "distinct_id":
        return "nullif(e.distinct_id, '')"
    assert part.property is not None
    return f"coalesce(CAST(json_extract(e.properties, {_pointer(part.property)}) AS VARCHAR), 'null')"


def _number_sql(name: str) -> str:
    """The property as the runtime's isNumber sees it: a JSON number that is finite (a JSON string's text
    starts with a quote, so it never casts)."""
    x = f"TRY_CAST(CAST(json_extract(e.properties, {_pointer(name)}) AS VARCHAR) AS DOUBLE)"
    return f"CASE WHEN isfinite({x}) THEN {x} END"


def _measure_sql(m: Measure, i: int) -> str:
    if m.op == "count":
        return "count(*)"
    v = f"v{i}"
    if m.op == "min":
        return f"min({v})"
    if m.op == "max":
        return f"max({v})"
    return f"list({v} ORDER BY e_time, e_seq) FILTER (WHERE {v} IS NOT NULL)"


def aggregate_rows(conn: duckdb.DuckDBPyConnection, spec: AggregateSpec) -> list[AggregateRow]:
    query = spec.scan
    source, where, params = matching_events(query)
    bound: dict[str, Any] = {
        **params,
        "w_start": query.from_ms if query.from_ms is not None else -_FAR,
        "w_end": query.to_ms if query.to_ms is not None else _FAR,
    }
    columns = ["e.time_ms AS e_time", "e.seq AS e_seq"]
    columns += [f"{_key_sql(k)} AS k{i}" for i, k in enumerate(spec.keys)]
    columns += [
        f"{_number_sql(m.property)} AS v{i}"
        for i, m in enumerate(spec.measures)
        if m.op != "count" and m.property is not None
    ]
    keys = ", ".join(f"k{i}" for i in range(len(spec.keys)))
    measures = ", ".join(_measure_sql(m, i) for i, m in enumerate(spec.measures))
    inner = f"""
        SELECT {", ".join(columns)} FROM {source}
        WHERE e.time_ms >= $w_start AND e.time_ms < $w_end AND ({where})
    """
    if spec.keys:
        sql = f"SELECT {keys}, {measures} FROM ({inner}) GROUP BY {keys} ORDER BY {keys}"
    else:
        sql = f"SELECT {measures} FROM ({inner})"
    n = len(spec.keys)
    out: list[AggregateRow] = []
    for row in conn.execute(sql, bound).fetchall():
        out.append((tuple(row[:n]), tuple(row[n:])))
    return out
