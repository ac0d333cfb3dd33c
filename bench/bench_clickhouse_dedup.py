"""What the `$insert_id` dedup look-up of one write batch costs on chDB as the store grows: the look-up the
engine runs (mixhouse/engine/clickhouse/dedup.py: the batch's key hashes in `dedup_keys`, then an exact
match of repeated keys only) next to the previous one (every key of the batch matched against the events,
bounded by the batch's (user, time) pairs), on `--events` stored events written by SQL with
bench_clickhouse's row formulas (random users over 30 days), merged. Each batch is 10,000 new keys of
random users spread over the month, as a large /import sends them. Mean of `--runs` batches after one
warm-up, wall seconds [process CPU seconds].

    .venv/bin/python -m bench.bench_clickhouse_dedup [--events 10000000] [--users 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import machine
from mixhouse.engine.clickhouse import dedup
from mixhouse.engine.clickhouse.driver import ChDBDriver
from mixhouse.engine.clickhouse.schema import statements

START_MS = 1_704_067_200_000  # 2024-01-01 UTC
MONTH_MS = 30 * 86_400_000
NAMES = ("Viewed Page", "Signed Up", "Added To Cart", "Checkout", "Purchase")

# The look-up before dedup_keys: every key of the batch against the events.
PREVIOUS = """WITH batch AS (
        SELECT arrayJoin(JSONExtract({keys:String}, 'Array(Tuple(String, String, Int64, String))')) AS k)
    SELECT project_id, arrayJoin(arrayPopBack(arraySort(groupArray(seq)))) AS seq
    FROM bench.events
    WHERE project_id = {p:Int64}
      AND (user_key, time_ms) IN (SELECT sipHash64(k.2), k.3 FROM batch)
      AND insert_id IS NOT NULL
      AND (event, distinct_id, time_ms, assumeNotNull(insert_id)) IN (SELECT k FROM batch)
    GROUP BY project_id, event, distinct_id, time_ms, insert_id
    HAVING count() > 1"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def batch(first: int, users: int) -> str:
    keys = {
        (NAMES[(i * 7) % 5], f"u{(i * 7919) % users}", START_MS + (i * 2_654_435_761) % MONTH_MS, f"x{i}")
        for i in range(first, first + 10_000)
    }
    return orjson.dumps(sorted(keys)).decode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {machine()} (shared with other work: figures are indicative)")
    with tempfile.TemporaryDirectory() as folder:
        driver = ChDBDriver(Path(folder), "bench")
        for sql in statements("bench"):
            driver.command(sql)
        started = time.perf_counter()
        for first in range(0, args.events, 1_000_000):
            driver.command(
                f"""INSERT INTO bench.events (project_id, seq, time_ms, event, distinct_id, insert_id, properties)
                SELECT 4242, number + 1, {START_MS} + (number * 2654435761) % {MONTH_MS},
                       {list(NAMES)}[(number * 7) % 5 + 1], concat('u', toString((number * 7919) % {args.users})),
                       concat('x', toString(number)), '{{"plan":"free"}}'
                FROM numbers({first}, {min(1_000_000, args.events - first)})"""
            )
        driver.command(
            "INSERT INTO bench.dedup_keys SELECT project_id,"
            " sipHash64(event, distinct_id, time_ms, assumeNotNull(insert_id)) FROM bench.events"
        )
        driver.command("OPTIMIZE TABLE bench.events FINAL")
        driver.command("OPTIMIZE TABLE bench.dedup_keys FINAL")
        print(f"{args.events:,} events of {args.users:,} users stored in {time.perf_counter() - started:.0f} s")
        for label, sql in (("previous (events only)", PREVIOUS), ("dedup_keys", dedup.repeated_select("bench"))):
            wall = cpu = 0.0
            for run in range(args.runs + 1):
                params = {"p": 4242, "keys": batch(10**9 + run * 10_000, args.users)}
                t, c = time.perf_counter(), cpu_seconds()
                driver.arrow(sql, params)
                if run:  # the first is a warm-up
                    wall += time.perf_counter() - t
                    cpu += cpu_seconds() - c
            print(f"{label:24} per batch of 10,000 keys: {wall / args.runs:.3f} [{cpu / args.runs:.3f}]", flush=True)
        driver.close()


if __name__ == "__main__":
    main()
