"""Compiled expressions on DuckDB: `where`, `on` keys, `number()` and date comparisons, next to hand-written SQL.

    .venv/bin/python -m bench.bench_expr                                  # 2M events
    .venv/bin/python -m bench.bench_expr --events 10000000                # the real run
    .venv/bin/python -m bench.bench_expr --baseline c5912f8               # also the printer of that commit

Each case runs as the query an analysis would run (a count for a filter, an unnest + group by for keys, a sum
for a number) and prints the median of --repeat runs. With --baseline REV the DuckDB printer of commit REV is
loaded from git and timed in the same process, and every compiled variant must give the same answer.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from mixhouse.engine.duckdb.expressions import Scope
from mixhouse.engine.duckdb.printer import DuckDBPrinter
from mixhouse.engine.duckdb.printer import DuckDBPrinter as Printer
from mixhouse.engine.duckdb.schema import SCHEMA
from mixhouse.expr import parse

SCOPE = Scope.events("e")


@dataclass(frozen=True)
class Case:
    name: str
    mode: str  # filter | key | number
    expr: str
    hand: str  # what a person would write knowing the data is clean (a reference, not always equivalent)


CASES = [
    Case(
        "where, 3 clauses",
        "filter",
        'properties["plan"] == "Premium" and properties["$os"] == "iOS" and properties["amount"] > 50',
        "json_extract_string(e.properties, '$.plan') = 'Premium' "
        "AND json_extract_string(e.properties, '$.\"$os\"') = 'iOS' "
        "AND TRY_CAST(json_extract(e.properties, '$.amount') AS DOUBLE) > 50",
    ),
    Case("on string property", "key", 'properties["plan"]', "[json_extract_string(e.properties, '$.plan')]"),
    Case(
        "on string(property)",
        "key",
        'string(properties["plan"])',
        "[json_extract_string(e.properties, '$.plan')]",
    ),
    Case(
        "on list property",
        "key",
        'properties["tags"]',
        "list_distinct(json_extract_string(e.properties, '$.tags[*]'))",
    ),
    Case(
        "number(amount)",
        "number",
        'number(properties["amount"])',
        "TRY_CAST(json_extract_string(e.properties, '$.amount') AS DOUBLE)",
    ),
    Case(
        '"a" in list',
        "filter",
        '"a" in properties["tags"]',
        "list_contains(json_extract_string(e.properties, '$.tags[*]'), 'a')",
    ),
    Case(
        "$time > datetime()",
        "filter",
        'properties["$time"] > datetime("2024-01-01T12:00:00")',
        "e.time_ms > 1704110400000",
    ),
    Case(
        "date string > datetime()",
        "filter",
        'properties["$last_seen"] > datetime("2024-01-01T00:00:00")',
        "TRY_CAST(json_extract_string(e.properties, '$.\"$last_seen\"') AS TIMESTAMP) > TIMESTAMP '2024-01-01'",
    ),
]


def load(conn: duckdb.DuckDBPyConnection, n: int) -> None:
    conn.execute(SCHEMA)
    conn.execute(
        f"""
        INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties)
        SELECT 1, i, 1704067200000 + i * 1000, 'ev' || (i % 10), 'u' || (i % 100000), NULL,
               json_object('plan', CASE WHEN i % 3 = 0 THEN 'Premium' ELSE 'Free' END,
                           '$os', CASE WHEN i % 2 = 0 THEN 'iOS' ELSE 'Android' END,
                           'amount', i % 100, 'mp_lib', 'web', '$browser', 'Chrome', '$city', 'Paris',
                           'tags', CASE i % 4 WHEN 0 THEN json('["a", "b"]') WHEN 1 THEN json('["c"]')
                                   WHEN 2 THEN json('[]') ELSE json('["b", "a", "b"]') END,
                           '$last_seen', CASE i % 3 WHEN 0 THEN '2023-12-' || lpad(CAST(1 + i % 28 AS VARCHAR), 2, '0')
                                         WHEN 1 THEN '2024-01-0' || CAST(1 + i % 9 AS VARCHAR) || 'T10:00:00'
                                         ELSE '2024-02-01T00:00:00Z' END,
                           '$screen_width', 1920, '$current_url', 'https://example.com/a/long/path?q=1')
        FROM range({n}) t(i)
        """
    )


def query(mode: str, sql: str) -> str:
    if mode == "filter":
        return f"SELECT count(*) FROM events e WHERE {sql}"
    if mode == "key":
        return f"SELECT k, count(*) FROM (SELECT unnest({sql}) AS k FROM events e) GROUP BY k ORDER BY k"
    return f"SELECT sum({sql}), count({sql}) FROM events e"


def baseline_printer(rev: str) -> Callable[[Scope], Printer]:
    """The DuckDB printer module as it was at `rev`, loaded under another name."""
    for path_at_rev in ("mixhouse/engine/duckdb/printer.py", "mixhouse/expr/printers/duckdb.py"):  # moved once
        shown = subprocess.run(["git", "show", f"{rev}:{path_at_rev}"], capture_output=True, text=True)
        if shown.returncode == 0:
            break
    shown.check_returncode()
    # A printer from before the move imports its Scope from where it stood then.
    source = shown.stdout.replace(
        "from mixhouse.expr.printers import Scope", "from mixhouse.engine.duckdb.scope import Scope"
    )
    path = Path(tempfile.mkdtemp()) / "baseline_printer.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_printer", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_printer"] = module
    spec.loader.exec_module(module)
    cls: Callable[[Scope], Printer] = module.DuckDBPrinter
    return cls


def compile_with(make: Callable[[Scope], Printer], case: Case) -> str:
    printer = make(SCOPE)
    tree = parse(case.expr)
    return {"filter": printer.filter, "key": printer.segment_key, "number": printer.number}[case.mode](tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", help="git revision whose printer is timed next to the current one")
    parser.add_argument("--only", help="run only cases whose name contains this")
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args()

    conn = duckdb.connect()
    load(conn, args.events)
    printers: dict[str, Callable[[Scope], Printer]] = {}
    if args.baseline:
        printers["before"] = baseline_printer(args.baseline)
    printers["compiled"] = DuckDBPrinter
    print(f"events: {args.events:,}  repeat: {args.repeat}  (median seconds)\n")
    header = f"{'case':<26}{'hand':>8}" + "".join(f"{label:>10}" for label in printers)
    if args.baseline:
        header += f"{'speed-up':>10}"
    print(header)
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        sqls = [query(case.mode, case.hand)]
        for make in printers.values():
            sql = compile_with(make, case)
            if args.show_sql:
                print(f"  {len(sql)} chars: {sql}")
            sqls.append(query(case.mode, sql))
        # Round-robin, so that load from others on the machine falls on every variant alike.
        runs: list[list[float]] = [[] for _ in sqls]
        answers: list[Any] = [None for _ in sqls]
        for _ in range(args.repeat):
            for i, sql in enumerate(sqls):
                start = time.perf_counter()
                answers[i] = conn.execute(sql).fetchall()
                runs[i].append(time.perf_counter() - start)
        seconds = [statistics.median(r) for r in runs]
        line = f"{case.name:<26}" + f"{seconds[0]:8.3f}" + "".join(f"{s:10.3f}" for s in seconds[1:])
        if args.baseline:
            line += f"{seconds[1] / seconds[-1]:9.1f}x"
        print(line, flush=True)
        assert all(a == answers[1] for a in answers[1:]), f"{case.name}: printers disagree: {answers[1:]}"


if __name__ == "__main__":
    main()
