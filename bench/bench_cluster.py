"""What coordinating several processes through PostgreSQL costs (mixhouse/cluster): the time to admit one
request under a shared rate-limit window (one transaction: advisory lock, count, insert) next to the
in-process limiter, with 1 and 4 threads admitting at once into one project's budget, and the time to
renew a lease. A throwaway PostgreSQL on loopback (tests/postgres.py), fsync off.

    .venv/bin/python -m bench.bench_cluster [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from bench.common import machine
from mixhouse.cluster.leases import Leases
from mixhouse.cluster.limits import SharedLimiter
from mixhouse.cluster.pg import Database
from mixhouse.domain.limits import Api, Limiter, Rule
from tests.postgres import PostgresCluster


def admit_us(limiter: Limiter, project: int, n: int, threads: int) -> tuple[float, float]:
    """(median µs per admission seen by a caller, admissions per second in all)."""
    rule = Rule(per_hour=10**9)
    times: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for _ in range(n // threads):
            started = time.perf_counter()
            limiter.release(limiter.acquire(project, Api.QUERY, rule))
            mine.append((time.perf_counter() - started) * 1e6)
        with lock:
            times.extend(mine)

    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return statistics.median(times), len(times) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    n = parser.parse_args().requests
    print(machine())
    with PostgresCluster() as pg, Database(pg.uri) as db:
        local = Limiter()
        shared = SharedLimiter(db)
        for threads in (1, 4):
            for name, limiter, project in (("in-process", local, 1), ("shared", shared, 10 + threads)):
                med, rate = admit_us(limiter, project, n, threads)
                print(
                    f"admit ({name}, {threads} thread{'s' if threads > 1 else ''}): median {med:.0f} µs, {rate:.0f}/s"
                )
        leases = Leases(db, "bench")
        times = []
        for _ in range(n // 4):
            started = time.perf_counter()
            assert leases.acquire("bench", 30)
            times.append((time.perf_counter() - started) * 1e6)
        print(f"lease renewal: median {statistics.median(times):.0f} µs")


if __name__ == "__main__":
    main()
