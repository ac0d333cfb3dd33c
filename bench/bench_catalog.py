"""What the catalog costs on each database: a project looked up by token (every ingestion and query
request does one) on SQLite, on PostgreSQL read every time, and on PostgreSQL with the server's project
cache (kept until a change notification); a service-account check already verified (the per-request
read of its row); a saved report written and read back; a job created and moved through its states.
A throwaway PostgreSQL on loopback (tests/postgres.py), fsync off.

    .venv/bin/python -m bench.bench_catalog [--n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import machine
from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from mixhouse.domain.saved.bookmarks import BookmarkStore
from mixhouse.jobs.model import JobState
from mixhouse.jobs.store import JobStore
from tests.postgres import PostgresCluster


def median_us(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def measure(name: str, catalog: Catalog, n: int) -> None:
    catalog.create_project(project_id=1, token="TOK", secret="SEC")
    _, secret = catalog.create_service_account(username="sa", secret="sa-secret", project_id=1, role=Role.OWNER)
    catalog.verify_service_account("sa", secret)
    bookmarks, jobs = BookmarkStore(catalog), JobStore(catalog)

    def job(_: int) -> None:
        made = jobs.create("k", 1, {})
        jobs.transition(made.id, [JobState.PENDING], JobState.STARTED)
        jobs.transition(made.id, [JobState.STARTED], JobState.SUCCESS, result={})

    figures = {
        "project_by_token": median_us(lambda _: catalog.project_by_token("TOK"), n),
        "verified service account": median_us(lambda _: catalog.verify_service_account("sa", secret), n),
        "bookmark create+get": median_us(lambda i: bookmarks.create(1, name=f"b{i}", description="", query={}), n // 4),
        "job create+2 transitions": median_us(job, n // 4),
    }
    for what, us in figures.items():
        print(f"{name:<28} {what:<28} {us:9.1f} µs (median)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp, PostgresCluster() as pg:
        measure("sqlite", Catalog(Path(tmp) / "a"), args.n)
        for db, cache in (("plain", False), ("cached", True)):
            pg.execute(f"CREATE DATABASE {db}", database="postgres")
            url = pg.uri.rsplit("/", 1)[0] + f"/{db}"
            with Catalog(Path(tmp), url=url, cache_projects=cache) as catalog:
                measure(f"postgresql{' + project cache' if cache else ''}", catalog, args.n)


if __name__ == "__main__":
    main()
