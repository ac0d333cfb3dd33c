"""`/engage` over many profiles: where latency and the server's peak memory while paging everything.

    .venv/bin/python -m bench.bench_engage [--profiles 1000000] [--runs 7]

The profiles are written in bulk straight into a fresh data dir's DuckDB file (no HTTP), then a real
server is started on it. Prints: the median latency of page 0 of a `where` query (each run a new
query, so the id snapshot is computed every time), the median of a page fetched from a kept snapshot,
the time to page through every profile (1000 a page), and the server's peak RSS (VmHWM) by then.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from bench.common import machine, median, peak_rss_mib
from mixhouse.engine.duckdb import DuckDBEngine
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
WHERE = 'user["plan"] == "pro" and user["$last_seen"] > datetime("2024-06-01T00:00:00")'


def write_profiles(data_dir: Path, count: int) -> None:
    DuckDBEngine(data_dir).close()  # the schema
    db = duckdb.connect(str(data_dir / "events.duckdb"))
    db.execute(
        """
        INSERT INTO profiles
        SELECT $project, 'user-' || lpad(CAST(i AS VARCHAR), 8, '0'),
               CAST(json_object('plan', ['free', 'pro', 'team'][i % 3 + 1], 'n', i, 'customer_id', 'c-' || i,
                                '$email', 'user' || i || '@example.com',
                                '$last_seen', strftime(TIMESTAMP '2024-01-01' + to_seconds(i * 7919 % 31536000),
                                                       '%Y-%m-%dT%H:%M:%S')) AS JSON),
               0
        FROM range($count) t(i)
        """,
        {"project": PROJECT_ID, "count": count},
    )
    db.close()


def engage(url: str, **params: str) -> dict[str, object]:
    response = httpx.get(
        f"{url}/api/2.0/engage", params={"project_id": str(PROJECT_ID), **params}, auth=AUTH, timeout=600
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        seed_catalog(data_dir)
        started = time.perf_counter()
        write_profiles(data_dir, args.profiles)
        print(f"wrote {args.profiles:,} profiles in {time.perf_counter() - started:.1f} s")
        server = ServerProcess(data_dir).start()
        try:
            assert server.proc is not None
            engage(server.url, distinct_id="warm-up")
            where_ms = []
            for _ in range(args.runs):
                t = time.perf_counter()
                first = engage(server.url, where=WHERE)
                where_ms.append((time.perf_counter() - t) * 1000)
            print(f"where page 0 ({first['total']:,} matches): median {median(where_ms):.0f} ms")
            session = str(first["session_id"])
            page_ms = []
            for page in range(1, args.runs + 1):
                t = time.perf_counter()
                engage(server.url, where=WHERE, session_id=session, page=str(page))
                page_ms.append((time.perf_counter() - t) * 1000)
            print(f"where page n from the kept snapshot: median {median(page_ms):.1f} ms")

            t = time.perf_counter()
            body = engage(server.url)
            seen, page = len(body["results"]), 0  # type: ignore[arg-type]
            while True:
                page += 1
                rows = engage(server.url, session_id=str(body["session_id"]), page=str(page))["results"]
                if not rows:
                    break
                seen += len(rows)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - t
            assert seen == args.profiles, seen
            print(
                f"paged all {seen:,} profiles in {elapsed:.1f} s ({seen / elapsed:,.0f} profiles/s); "
                f"server peak RSS {peak_rss_mib(server.proc.pid):.0f} MiB"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
