"""What several API processes on one ClickHouse cost (docs/scale-out.md#several-processes-on-one-clickhouse):

- taking a batch's event numbers from the shared PostgreSQL counter (`SharedSequence.take`, one
  UPDATE ... RETURNING) next to the in-process counter, from 1 and 4 threads;
- engage paging with the id list kept in ClickHouse: page 0 of a query matching N profiles (the ids
  computed, then written to `engage_lists` when longer than a page) and a later page (read from the list),
  on chDB in process (the ClickHouse cost, without HTTP) and through the HTTP driver against the loopback
  endpoint (tests/clickhouse_endpoint.py).

A throwaway PostgreSQL on loopback (tests/postgres.py). Median of `--runs` runs.

    .venv/bin/python -m bench.bench_clickhouse_processes [--profiles 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import machine
from mixhouse.cluster.pg import Database
from mixhouse.domain.profiles import ProfileUpdate
from mixhouse.domain.query.engage import EngageSpec
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.clickhouse import ClickHouseEngine
from mixhouse.engine.clickhouse.driver import ChDBDriver, Driver, HTTPDriver
from mixhouse.engine.clickhouse.queries import engage as engage_queries
from mixhouse.engine.clickhouse.sequence import LocalSequence, Sequence, SharedSequence
from tests.clickhouse_endpoint import ClickHouseEndpoint
from tests.postgres import PostgresCluster


def take_us(sequence: Sequence, n: int, threads: int) -> float:
    times: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for _ in range(n // threads):
            started = time.perf_counter()
            sequence.take(1000)
            mine.append((time.perf_counter() - started) * 1e6)
        with lock:
            times.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return statistics.median(times)


def paging_ms(driver: Driver, profiles: int, runs: int) -> tuple[float, float, float]:
    """(median ms of page 0 with the list written, of page 5 read from the list, of computing the ids alone
    as page 0 did before the list was kept in ClickHouse)."""
    engine = ClickHouseEngine(driver)
    try:
        ops = (("$set", {"n": 1}),)
        for start in range(0, profiles, 50_000):
            ids = [f"user-{i:08d}" for i in range(start, min(profiles, start + 50_000))]
            batch = WriteBatch(profile_updates=[ProfileUpdate(1, (d,), ops, 1_704_067_200_000, False) for d in ids])
            engine.submit(batch).result(timeout=600)
        first, later, ids_only = [], [], []
        for run in range(runs):
            started = time.perf_counter()
            engage_queries._matching_ids(engine.store, EngageSpec(1))
            ids_only.append((time.perf_counter() - started) * 1000)
            session = f"1704067200000-{run:06X}"
            started = time.perf_counter()
            page = engine.query(EngageSpec(1, page=0, page_size=1000, session_id=session))
            first.append((time.perf_counter() - started) * 1000)
            assert page.total == profiles
            started = time.perf_counter()
            engine.query(EngageSpec(1, page=5, page_size=1000, session_id=session))
            later.append((time.perf_counter() - started) * 1000)
        return statistics.median(first), statistics.median(later), statistics.median(ids_only)
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--takes", type=int, default=2000)
    args = parser.parse_args()
    print(machine())
    with PostgresCluster() as pg, Database(pg.uri) as db:
        shared = SharedSequence(db, "bench")
        shared.start_after(0)
        for threads in (1, 4):
            print(
                f"seq take, {threads} thread(s): shared {take_us(shared, args.takes, threads):.0f} µs,"
                f" local {take_us(LocalSequence(), args.takes, threads):.1f} µs (median per batch)"
            )
    with tempfile.TemporaryDirectory() as tmp:
        first, later, ids = paging_ms(ChDBDriver(Path(tmp) / "chdb", "bench"), args.profiles, args.runs)
        print(
            f"engage, {args.profiles} profiles, chDB in process: page 0 {first:.0f} ms (ids alone {ids:.0f} ms),"
            f" page 5 {later:.0f} ms"
        )
        with ClickHouseEndpoint(Path(tmp) / "endpoint") as endpoint:
            first, later, ids = paging_ms(HTTPDriver(endpoint.url, "bench"), args.profiles, args.runs)
        print(
            f"engage, {args.profiles} profiles, HTTP driver + endpoint: page 0 {first:.0f} ms"
            f" (ids alone {ids:.0f} ms), page 5 {later:.0f} ms"
        )


if __name__ == "__main__":
    main()
