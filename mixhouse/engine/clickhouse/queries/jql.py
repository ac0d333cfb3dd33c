"""JQL's aggregate shapes on ClickHouse (mixhouse/jql/pushdown.py), as the embedded engine answers them
(mixhouse/engine/duckdb/queries/jql.py): the events a scan would read, grouped, with counts, extremes and
the sums a fold makes, in one statement; when a group's sums cannot be shown exact in any order, a second
statement folds its numbers left to right in the scan's order (time, then ingestion), one IEEE double
addition at a time (`arrayFold`), as the JavaScript runtime adds them."""

from __future__ import annotations

from typing import Any

from mixhouse.engine.clickhouse.printer import quote
from mixhouse.engine.clickhouse.scan import matching_events
from mixhouse.engine.clickhouse.store import Store
from mixhouse.engine.common.jql import exact
from mixhouse.jql.pushdown import AggregateRow, AggregateSpec, KeyPart, Measure

_FAR = 2**62


def _raw(name: str) -> str:
    return f"nullIf(JSONExtractRaw(e.properties, {quote(name)}), '')"


def _key_sql(part: KeyPart) -> str:
    """A key part as text: the field, or the property's JSON text ('null' when absent)."""
    if part.field == "name":
        return "toNullable(e.event)"
    if part.field == "distinct_id":
        return "nullIf(e.distinct_id, '')"
    assert part.property is not None
    return f"toNullable(coalesce({_raw(part.property)}, 'null'))"


def _number_sql(name: str) -> str:
    """The property as the runtime's isNumber sees it: a JSON number that is finite."""
    raw = _raw(name)
    x = f"if(match({raw}, '^-?[0-9]'), toFloat64OrNull({raw}), NULL)"
    return f"arrayMap(n_x -> if(isFinite(n_x), n_x, NULL), [{x}])[1]"


# The dyadic grain of a number (see the DuckDB side): the least k <= 10 with v * 2**k an integer, 99: none.
_GRAIN = "multiIf(" + ", ".join(f"{{v}} * {2**k} = round({{v}} * {2**k}), {k}" for k in range(11)) + ", 99)"


def _measure_sql(m: Measure, i: int, ordered: bool) -> list[str]:
    v = f"v{i}"
    if m.op == "count":
        return ["count()"]
    if m.op in ("min", "max"):
        return [f"{m.op}({v})"]
    some = f"count({v}) > 0"
    if not ordered:
        return [
            f"count({v})",
            f"if({some}, sum({v}), NULL)",
            f"if({some}, sum({v} * {v}), NULL)",
            f"if({some}, sum(abs({v})), NULL)",
            f"if({some}, max({_GRAIN.format(v=v)}), NULL)",
        ]
    values = f"arrayMap(o_t -> o_t.3, arraySort(groupArrayIf((e_time, e_seq, assumeNotNull({v})), isNotNull({v}))))"
    squares = f"arrayMap(o_x -> o_x * o_x, {values})"

    def fold(a: str) -> str:  # from the first value on, as the runtime's reduce does
        return f"arrayFold((f_acc, f_x) -> f_acc + f_x, arrayPopFront({a}), {a}[1])"

    return [f"count({v})", f"if({some}, {fold(values)}, NULL)", f"if({some}, {fold(squares)}, NULL)"]


def aggregate_rows(store: Store, spec: AggregateSpec) -> list[AggregateRow]:
    """One grouped query; when a fold's sums cannot be shown exact, a second one that folds in order."""
    rows = _rows(store, spec, ordered=False)
    if any(m.op == "fold" and not exact(*v) for _, values in rows for m, v in zip(spec.measures, values, strict=True)):
        return _rows(store, spec, ordered=True)
    return [
        (key, tuple(v[:3] if m.op == "fold" else v for m, v in zip(spec.measures, values, strict=True)))
        for key, values in rows
    ]


def _rows(store: Store, spec: AggregateSpec, ordered: bool) -> list[AggregateRow]:
    query = spec.scan
    source, where, params = matching_events(store, query)
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
    parts = [_measure_sql(m, i, ordered) for i, m in enumerate(spec.measures)]
    names = [f"m{i}_{j}" for i, cols in enumerate(parts) for j in range(len(cols))]
    measures = ", ".join(f"{c} AS {n}" for c, n in zip((c for cols in parts for c in cols), names, strict=True))
    inner = f"""
        SELECT {", ".join(columns)} FROM {source}
        WHERE e.time_ms >= {{w_start:Int64}} AND e.time_ms < {{w_end:Int64}} AND ({where})
    """
    if spec.keys:
        sql = f"SELECT {keys}, {measures} FROM ({inner}) GROUP BY {keys} ORDER BY {keys}"
    else:
        sql = f"SELECT {measures} FROM ({inner})"
    out: list[AggregateRow] = []
    for row in store.rows(sql, bound):
        key = tuple(row[f"k{i}"] for i in range(len(spec.keys)))
        values: list[Any] = []
        for i, cols in enumerate(parts):
            got = tuple(row[f"m{i}_{j}"] for j in range(len(cols)))
            values.append(got if len(cols) > 1 else got[0])
        out.append((key, tuple(values)))
    return out
