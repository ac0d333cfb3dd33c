"""Filter throughput of a compiled three-clause `where` vs the same filter written by hand, on DuckDB.

    .venv/bin/python -m bench.bench_expr                    # 1M events, quick
    .venv/bin/python -m bench.bench_expr --events 10000000  # the real run

Prints the median of --repeat runs for each, and checks both select the same rows.
"""

from __future__ import annotations

import argparse
import statistics
import time

import duckdb

from mixhouse.engine.duckdb.schema import SCHEMA
from mixhouse.expr import Scope, compile_filter

WHERE = 'properties["plan"] == "Premium" and properties["$os"] == "iOS" and properties["amount"] > 50'
# What a person would write knowing the data is clean (no type checks beyond the number cast).
HAND = (
    "json_extract_string(e.properties, '$.plan') = 'Premium' "
    "AND json_extract_string(e.properties, '$.\"$os\"') = 'iOS' "
    "AND TRY_CAST(json_extract(e.properties, '$.amount') AS DOUBLE) > 50"
)


def load(conn: duckdb.DuckDBPyConnection, n: int) -> None:
    conn.execute(SCHEMA)
    conn.execute(
        f"""
        INSERT INTO events
        SELECT 1, i, 1704067200000 + i * 1000, 'ev' || (i % 10), 'u' || (i % 100000), NULL,
               json_object('plan', CASE WHEN i % 3 = 0 THEN 'Premium' ELSE 'Free' END,
                           '$os', CASE WHEN i % 2 = 0 THEN 'iOS' ELSE 'Android' END,
                           'amount', i % 100, 'mp_lib', 'web', '$browser', 'Chrome', '$city', 'Paris',
                           '$screen_width', 1920, '$current_url', 'https://example.com/a/long/path?q=1')
        FROM range({n}) t(i)
        """
    )


def timed(conn: duckdb.DuckDBPyConnection, where: str, repeat: int) -> tuple[float, int]:
    runs, count = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        row = conn.execute(f"SELECT count(*) FROM events e WHERE {where}").fetchone()
        runs.append(time.perf_counter() - start)
        count = int(row[0]) if row else 0
    return statistics.median(runs), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    conn = duckdb.connect()
    load(conn, args.events)
    compiled = compile_filter(WHERE, Scope.events("e"))
    print(f"where: {WHERE}\nevents: {args.events:,}\n")
    results = {}
    for label, sql in (("hand-written", HAND), ("compiled", compiled)):
        seconds, count = timed(conn, sql, args.repeat)
        results[label] = (seconds, count)
        print(
            f"{label:>12}: median {seconds * 1000:8.1f} ms  {args.events / seconds / 1e6:7.1f} M events/s  ({count:,} rows)"
        )
    assert results["hand-written"][1] == results["compiled"][1], "compiled and hand-written disagree"
    ratio = results["compiled"][0] / results["hand-written"][0]
    print(f"\ncompiled / hand-written: {ratio:.2f}x\n\ncompiled SQL:\n{compiled}")


if __name__ == "__main__":
    main()
