"""How much the ClickHouse printer's property reads cost on chDB next to the plainest ClickHouse read of
the same key (`JSONExtractString`/`JSONExtractFloat`): segmentation `on` a property, `where` a property equals
a string, and `where` a number comparison, over `--rows` generated events (properties as JSON text, as the
engine stores them). Best of `--runs`.

    .venv/bin/python -m bench.bench_clickhouse_properties [--rows 2000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import machine
from mixhouse.engine.clickhouse.driver import ChDBDriver
from mixhouse.engine.clickhouse.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.engine.clickhouse.lookups import lookup_database
from mixhouse.expr.plan import EventExpr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        driver = ChDBDriver(Path(folder), "bench")
        driver.command("CREATE TABLE bench.t (id UInt64, properties String) ENGINE = MergeTree ORDER BY id")
        driver.command(
            "INSERT INTO bench.t SELECT number, concat('{\"plan\":\"', ['free','pro','team'][number % 3 + 1],"
            ' \'","amount":\', toString(number % 97), \',"browser":"Chrome","x":\', toString(number),'
            f' \',"tags":["a","b"]}}\') FROM numbers({args.rows})'
        )
        scope = Scope.events("e")
        with lookup_database("bench"):
            keys = compile_segment_key(EventExpr.parse('properties["plan"]'), scope)
            equal = compile_filter(EventExpr.parse('properties["plan"] == "pro"'), scope)
            greater = compile_filter(EventExpr.parse('properties["amount"] > 50'), scope)
        cases = [
            ("on: printer", f"SELECT k, count() FROM bench.t AS e ARRAY JOIN {keys} AS k GROUP BY k"),
            ("on: JSONExtractString", "SELECT k, count() FROM bench.t AS e GROUP BY JSONExtractString(e.properties, 'plan') AS k"),
            ("where ==: printer", f"SELECT count() FROM bench.t AS e WHERE {equal}"),
            ("where ==: JSONExtractString", "SELECT count() FROM bench.t AS e WHERE JSONExtractString(e.properties, 'plan') = 'pro'"),
            ("where >: printer", f"SELECT count() FROM bench.t AS e WHERE {greater}"),
            ("where >: JSONExtractFloat", "SELECT count() FROM bench.t AS e WHERE JSONExtractFloat(e.properties, 'amount') > 50"),
        ]  # fmt: skip
        print(f"{args.rows:,} events, best of {args.runs}")
        for label, sql in cases:
            best = float("inf")
            for _ in range(args.runs):
                started = time.perf_counter()
                driver.arrow(sql)
                best = min(best, time.perf_counter() - started)
            print(f"  {label:32s} {best * 1000:8.1f} ms")
        driver.close()


if __name__ == "__main__":
    main()
