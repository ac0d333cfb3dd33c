"""JQL's aggregate shapes on DuckDB (mixhouse/jql/pushdown.py): the events a scan would read, grouped, with
counts, extremes and the ordered numbers a sum folds, in one statement."""

from __future__ import annotations

from typing import Any

import duckdb

from mixhouse.engine.common.jql import exact as _exact
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


# The dyadic grain of a number: the least k <= 10 with v * 2**k an integer (99: none). When every number
# of a group is a multiple of 2**-k and the sum of their magnitudes times 2**k stays under 2**52, every
# partial sum is exact whatever the order, so DuckDB's sum is the left fold's (the same for the squares,
# multiples of 2**-2k). Integers, halves and cents-free prices take this path; the rest fold in order.
_GRAIN = "CASE " + " ".join(f"WHEN {{v}} * {2**k} = round({{v}} * {2**k}) THEN {k}" for k in range(11)) + " ELSE 99 END"


def _measure_sql(m: Measure, i: int, ordered: bool) -> list[str]:
    """The grouped aggregates of a measure: one column, or a fold's (n, sum, sum of squares) and, unless
    `ordered`, what shows the sums exact (grain, sum of magnitudes)."""
    v = f"v{i}"
    if m.op == "count":
        return ["count(*)"]
    if m.op in ("min", "max"):
        return [f"{m.op}({v})"]
    if not ordered:
        return [f"count({v})", f"sum({v})", f"sum({v} * {v})", f"sum(abs({v}))", f"max({_GRAIN.format(v=v)})"]
    # list_reduce adds left to right, one IEEE double addition at a time: the runtime's fold
    values = f"list({v} ORDER BY e_time, e_seq) FILTER (WHERE {v} IS NOT NULL)"
    add = "lambda a, b: a + b"
    return [
        f"count({v})",
        f"CASE WHEN count({v}) > 0 THEN list_reduce({values}, {add}) END",
        f"CASE WHEN count({v}) > 0 THEN list_reduce(list_transform({values}, lambda x: x * x), {add}) END",
    ]


def aggregate_rows(conn: duckdb.DuckDBPyConnection, spec: AggregateSpec) -> list[AggregateRow]:
    """One grouped query; when a fold's sums cannot be shown exact, a second one that folds in order."""
    rows = _rows(conn, spec, ordered=False)
    if any(m.op == "fold" and not _exact(*v) for _, values in rows for m, v in zip(spec.measures, values, strict=True)):
        return _rows(conn, spec, ordered=True)
    return [
        (key, tuple(v[:3] if m.op == "fold" else v for m, v in zip(spec.measures, values, strict=True)))
        for key, values in rows
    ]


def _rows(conn: duckdb.DuckDBPyConnection, spec: AggregateSpec, ordered: bool) -> list[AggregateRow]:
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
    widths = [len(_measure_sql(m, i, ordered)) for i, m in enumerate(spec.measures)]
    measures = ", ".join(c for i, m in enumerate(spec.measures) for c in _measure_sql(m, i, ordered))
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
        values: list[Any] = []
        at = n
        for width in widths:
            values.append(tuple(row[at : at + width]) if width > 1 else row[at])
            at += width
        out.append((tuple(row[:n]), tuple(values)))
    return out
