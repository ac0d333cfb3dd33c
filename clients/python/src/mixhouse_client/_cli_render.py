"""Reports as rows (for a table or CSV) and as terminal charts: horizontal bars for one series or a
funnel's steps, a sparkline per segment for several series."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

SPARKS = "▁▂▃▄▅▆▇█"
MAX_CHART_SERIES = 10


@dataclass
class Rows:
    title: str
    header: list[str]
    rows: list[list[Any]]


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def print_table(console: Console, rows: Rows) -> None:
    table = Table(title=rows.title, title_justify="left")
    for i, name in enumerate(rows.header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows.rows:
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)


def csv_text(rows: Rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows.header)
    writer.writerows(rows.rows)
    return out.getvalue()


# -- reports as rows -------------------------------------------------------------------------------


def series_rows(title: str, series: Sequence[str], values: dict[str, dict[str, Any]]) -> Rows:
    """Time series (segmentation, insights): a row per bucket, a column per segment."""
    names = list(values)
    return Rows(title, ["date", *names], [[d, *(values[n].get(d, 0) for n in names)] for d in series])


def segmentation_rows(event: str, reply: dict[str, Any]) -> Rows:
    data = reply.get("data", {})
    return series_rows(f"{event}: segmentation", data.get("series", []), data.get("values", {}))


def insights_rows(reply: dict[str, Any]) -> Rows:
    series: dict[str, Any] = reply.get("series", {})
    flat: dict[str, dict[str, Any]] = {}
    for event, buckets in series.items():
        if buckets and all(isinstance(v, dict) for v in buckets.values()):  # event > segment > bucket
            for segment, inner in buckets.items():
                flat[f"{event} / {segment}"] = inner
        else:
            flat[event] = buckets
    dates = sorted({d for inner in flat.values() for d in inner})
    return series_rows("insights", dates, flat)


def funnel_steps(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The funnel's steps summed over every date bucket (`$overall` when segmented)."""
    totals: list[dict[str, Any]] = []
    for bucket in reply.get("data", {}).values():
        steps = bucket.get("steps") if "steps" in bucket else bucket.get("$overall", [])
        for i, step in enumerate(steps):
            if i == len(totals):
                totals.append({"label": step.get("step_label") or step.get("event"), "count": 0})
            totals[i]["count"] += step.get("count", 0)
    return totals


def funnel_rows(funnel_id: int, reply: dict[str, Any]) -> Rows:
    steps = funnel_steps(reply)
    first = steps[0]["count"] if steps else 0
    rows = []
    for i, step in enumerate(steps):
        previous = steps[i - 1]["count"] if i else step["count"]
        step_conv = step["count"] / previous if previous else 0.0
        overall = step["count"] / first if first else 0.0
        rows.append([i + 1, step["label"], step["count"], f"{step_conv:.1%}", f"{overall:.1%}"])
    return Rows(f"funnel {funnel_id}", ["step", "event", "count", "from previous", "overall"], rows)


def retention_rows(reply: dict[str, Any]) -> Rows:
    cohorts = reply.get("$overall", reply) if "$overall" in reply else reply
    width = max((len(c.get("counts", [])) for c in cohorts.values()), default=0)
    rows = [[day, c.get("first", 0), *c.get("counts", [])] for day, c in sorted(cohorts.items())]
    for row in rows:
        row.extend([""] * (width + 2 - len(row)))
    return Rows("retention", ["cohort", "size", *(f"+{i}" for i in range(width))], rows)


# -- charts ----------------------------------------------------------------------------------------


def bars(console: Console, title: str, labels: Sequence[str], values: Sequence[float]) -> None:
    width = max(10, min(60, console.width - max((len(x) for x in labels), default=0) - 16))
    peak = max(values, default=0) or 1
    console.print(Text(title, style="bold"))
    label_width = max((len(x) for x in labels), default=0)
    for label, value in zip(labels, values, strict=True):
        filled = round(width * value / peak)
        line = Text(f"{label:<{label_width}} ")
        line.append("█" * filled or ("▏" if value else ""), style="cyan")
        line.append(f" {_fmt(value)}")
        console.print(line)


def sparkline(values: Sequence[float]) -> str:
    peak = max(values, default=0)
    if peak <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / peak * (len(SPARKS) - 1) + 0.5))] for v in values)


def series_chart(console: Console, rows: Rows) -> None:
    """One series: a bar per bucket. Several: a sparkline per segment (top ten by total)."""
    names = rows.header[1:]
    if len(names) == 1:
        bars(console, rows.title, [str(r[0]) for r in rows.rows], [float(r[1] or 0) for r in rows.rows])
        return
    columns = {name: [float(r[i + 1] or 0) for r in rows.rows] for i, name in enumerate(names)}
    ranked = sorted(columns, key=lambda n: -sum(columns[n]))[:MAX_CHART_SERIES]
    if rows.rows:
        console.print(Text(f"{rows.title}  ({rows.rows[0][0]} → {rows.rows[-1][0]})", style="bold"))
    width = max((len(n) for n in ranked), default=0)
    for name in ranked:
        line = Text(f"{name:<{width}} ")
        line.append(sparkline(columns[name]), style="cyan")
        line.append(f" {_fmt(sum(columns[name]))}")
        console.print(line)


def funnel_chart(console: Console, funnel_id: int, reply: dict[str, Any]) -> None:
    steps = funnel_steps(reply)
    labels = [f"{i + 1}. {s['label']}" for i, s in enumerate(steps)]
    bars(console, f"funnel {funnel_id}", labels, [float(s["count"]) for s in steps])


def jql_rows(result: Any) -> Rows | None:
    """A JQL result as a table when it has a tabular shape: groupBy's `{"key": [...], "value": v}` items (a
    column per key part, then the value), lists of equal length, objects (a column per key seen), scalars;
    None otherwise (printed as JSON)."""
    if not isinstance(result, list):
        result = [result]
    if not result:
        return Rows("jql", ["value"], [])
    if all(isinstance(r, dict) and set(r) == {"key", "value"} and isinstance(r["key"], list) for r in result):
        width = max(len(r["key"]) for r in result)
        header = [f"key {i + 1}" if width > 1 else "key" for i in range(width)] + ["value"]
        return Rows("jql", header, [[*r["key"], *[""] * (width - len(r["key"])), _cell(r["value"])] for r in result])
    if all(isinstance(r, list) for r in result) and len({len(r) for r in result}) == 1:
        return Rows("jql", [str(i + 1) for i in range(len(result[0]))], [[_cell(v) for v in r] for r in result])
    if all(isinstance(r, dict) for r in result):
        keys: list[str] = []
        for r in result:
            keys.extend(k for k in r if k not in keys)
        return Rows("jql", keys, [[_cell(r.get(k)) for k in keys] for r in result])
    if all(not isinstance(r, list | dict) for r in result):
        return Rows("jql", ["value"], [[r] for r in result])
    return None


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if isinstance(value, list | dict) else value
