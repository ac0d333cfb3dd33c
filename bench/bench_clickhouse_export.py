"""A whole month's `/export` on chDB through the engine: staged (the rows copied once into a table ordered
by (time, seq), windows read from it: what the engine does) next to the windows read straight from the
events table (what it did before, and still does on a ClickHouse server), on `--events` events of random
users over 30 days written by SQL and merged. Both write the same bytes. Wall seconds [process CPU seconds].

    .venv/bin/python -m bench.bench_clickhouse_export [--events 3000000] [--users 300000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from bench.common import machine
from mixhouse.compose import open_engine
from mixhouse.domain.export import ExportQuery
from mixhouse.domain.project import Project
from mixhouse.engine.clickhouse.engine import ClickHouseEngine
from mixhouse.settings import load_settings

START_MS = 1_704_067_200_000  # 2024-01-01 UTC
MONTH_MS = 30 * 86_400_000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--users", type=int, default=300_000)
    args = ap.parse_args()
    print(f"machine: {machine()} (shared with other work: figures are indicative)")
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(load_settings({"engine": "chdb", "data_dir": Path(folder)}, env={}))
        assert isinstance(engine, ClickHouseEngine)
        driver = engine.store.driver
        for first in range(0, args.events, 1_000_000):
            driver.command(
                f"""INSERT INTO {engine.db}.events (project_id, seq, time_ms, event, distinct_id, insert_id, properties)
                SELECT 4242, number + 1, {START_MS} + (number * 2654435761) % {MONTH_MS},
                       ['Viewed Page', 'Signed Up', 'Purchase'][number % 3 + 1],
                       concat('u', toString((number * 7919) % {args.users})), concat('x', toString(number)),
                       concat('{{"plan":"', ['free', 'pro', 'team'][number % 3 + 1], '","amount":',
                              toString(number % 100), '.5,"$browser":"Chrome"}}')
                FROM numbers({first}, {min(1_000_000, args.events - first)})"""
            )
        driver.command(f"OPTIMIZE TABLE {engine.db}.events FINAL")
        query = ExportQuery(Project(4242, "p", "t", "s", "k"), START_MS, START_MS + MONTH_MS, None, None, None, False)
        staging = type(engine._driver).staging
        for label, staged in (("staged", True), ("windows from the events", False)):
            type(engine._driver).staging = staged  # type: ignore[misc]
            started, before = time.perf_counter(), cpu_seconds()
            size = sum(len(chunk) for chunk in engine.export_lines(query))
            print(
                f"{args.events:,} events, export {label:24} {time.perf_counter() - started:.1f}"
                f" [{cpu_seconds() - before:.1f}] ({size:,} bytes)",
                flush=True,
            )
        type(engine._driver).staging = staging  # type: ignore[misc]
        engine.close()


if __name__ == "__main__":
    main()
