"""Lookup-table reads in segmentation, in-process through the domain functions (docs/lookup-tables.md).

    .venv/bin/python -m bench.bench_lookup                                  # 200k events, quick
    .venv/bin/python -m bench.bench_lookup --events 2000000 --rows 100000

The events of bench_segmentation (an `amount` with 1,000 distinct values on each); a lookup table keyed
by the amount's text (`"500.5"`), padded with rows no event matches up to --rows, mapped to `amount`.
Prints the median of --repeat runs per query: a breakdown by a plain property beside the same breakdown
through the table, a filter through it, and the first query after a replace (which loads the new version).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.bench_segmentation import DATES, PROJECT, load, timed
from bench.common import machine
from mixhouse.catalog import Catalog
from mixhouse.domain.auth import Caller, Via
from mixhouse.domain.project import Role
from mixhouse.domain.query import segmentation
from mixhouse.domain.query.context import QueryContext
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.lookup import csvtable
from mixhouse.lookup.resolve import LookupResolver
from mixhouse.lookup.store import LookupStore


def table_csv(rows: int, tiers: tuple[str, ...]) -> str:
    lines = ["amount,tier,weight"]
    lines += [f"{i}.5,{tiers[i % len(tiers)]},{i % 7}" for i in range(1000)]
    lines += [f"pad-{i},none,0" for i in range(max(0, rows - 1000))]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=1_000, help="rows of the lookup table (at least 1,000)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-limit", default="2GB")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        catalog = Catalog(data_dir)
        project = catalog.create_project(
            project_id=PROJECT, name="bench", token="T", secret="S", api_key="K", timezone="America/New_York"
        )
        engine = DuckDBEngine(data_dir, memory_limit=args.memory_limit, lookups=LookupResolver(catalog))
        load(engine, args.events, 1_000)
        store = LookupStore(catalog)
        table = store.create(PROJECT, "Amounts")
        store.replace(PROJECT, table.id, csvtable.parse(table_csv(args.rows, ("gold", "silver", "bronze"))))
        store.set_mappings(PROJECT, table.id, {"event": ["amount"], "user": []})
        print(machine())
        print(f"{args.events:,} events (+1% duplicates), a lookup table of {args.rows:,} rows")
        caller = Caller(project, Via.SECRET, Role.OWNER)

        def segment(**params: str) -> object:
            return segmentation.segmentation(
                QueryContext(caller, {"event": "Purchase", **DATES, **params}, engine, catalog)
            )

        queries = [
            ('on a plain property (properties["plan"])', {"on": 'properties["plan"]'}),
            ('on a lookup column (properties["amount"]["tier"])', {"on": 'properties["amount"]["tier"]'}),
            ('where a lookup column == "gold"', {"where": 'properties["amount"]["tier"] == "gold"'}),
            ('where the plain property == "pro"', {"where": 'properties["plan"] == "pro"'}),
        ]
        for name, params in queries:
            seconds, _ = timed(lambda params=params: segment(**params), args.repeat)
            print(f"{name:<60} median {seconds * 1000:9.1f} ms  ({args.repeat} runs)")
        loads = []
        for i in range(args.repeat):
            tiers = ("gold", "silver") if i % 2 else ("gold", "silver", "bronze")
            store.replace(PROJECT, table.id, csvtable.parse(table_csv(args.rows, tiers)))
            start = time.perf_counter()
            segment(on='properties["amount"]["tier"]')
            loads.append(time.perf_counter() - start)
        loads.sort()
        print(
            f"{'the first query after a replace (loads the version)':<60} median {loads[len(loads) // 2] * 1000:9.1f} ms"
        )
        engine.close()


if __name__ == "__main__":
    main()
