"""`/api/query/jql` and `/api/2.0/jql`: `script` and `params` (form, JSON body or query string), the
final collection as a JSON array, or as CSV with `format=csv`."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from mixhouse.domain.query.context import CsvReply, QueryContext
from mixhouse.errors import MissingParameter
from mixhouse.jql.runner import parse_params, run_script
from mixhouse.jql.settings import current


def jql(ctx: QueryContext) -> Any:
    script = ctx.params.get("script")
    if script is None or not script.strip():
        raise MissingParameter("script")
    params = parse_params(ctx.params.get("params"))
    result = run_script(ctx.engine, ctx.project, script, params, current())
    if (ctx.params.get("format") or "").lower() == "csv":
        return CsvReply(to_csv(orjson.loads(result)))
    return orjson.Fragment(result)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    return orjson.dumps(value).decode()


def _flat(item: Any) -> dict[str, Any]:
    """One row: `{key: [...], value}` items give key.0, key.1, ..., value; objects their keys (nested
    objects with dotted names); anything else one `value` column."""
    if isinstance(item, dict):
        row: dict[str, Any] = {}
        for k, v in item.items():
            if k == "key" and isinstance(v, list):
                for i, part in enumerate(v):
                    row[f"key.{i}"] = part
            elif isinstance(v, dict):
                for sub, sv in _flat(v).items():
                    row[f"{k}.{sub}"] = sv
            else:
                row[k] = v
        return row
    return {"value": item}


def to_csv(items: list[Any]) -> str:
    rows = [_flat(item) for item in items]
    columns: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for name in row:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()
