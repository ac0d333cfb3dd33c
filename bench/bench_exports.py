"""Concurrent exports against a real server: how many finish whole, how many are refused (503, retryable),
none cut short, and the server's peak RSS. The review ran 50 exports of 43.5 MB at once: 16 answered 500
or were cut after a 200, and memory grew ~90 MB per export to 3.7 GB.

    .venv/bin/python -m bench.bench_exports [--events 200000] [--clients 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.bench_segmentation import PROJECT, load
from bench.common import machine, peak_rss_mib
from mixhouse.catalog import Catalog
from mixhouse.engine.duckdb import DuckDBEngine
from tests.server import ServerProcess


def export(base: str, gzip: bool) -> tuple[str, int]:
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    params = {"from_date": "2024-01-01", "to_date": "2024-01-31"}
    try:
        with httpx.stream(
            "GET", f"{base}/api/2.0/export", params=params, headers=headers, auth=("S", ""), timeout=600
        ) as response:
            if response.status_code != 200:
                return f"{response.status_code}", 0
            lines = sum(chunk.count(b"\n") for chunk in response.iter_bytes())
            return "200 whole", lines
    except httpx.HTTPError as exc:
        return f"broken ({type(exc).__name__})", 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    print(machine(), "(shared with other work: figures vary)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        Catalog(data_dir).create_project(
            project_id=PROJECT, name="bench", token="T", secret="S", api_key="K", timezone="America/New_York"
        )
        engine = DuckDBEngine(data_dir)
        load(engine, args.events, 20_000)
        engine.close()
        server = ServerProcess(data_dir).start()
        try:
            assert server.proc is not None
            idle = peak_rss_mib(server.proc.pid)
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                results = list(pool.map(lambda k: export(server.url, k % 2 == 0), range(args.clients)))
            seconds = time.perf_counter() - started
            outcomes = Counter(status for status, _ in results)
            whole = {lines for status, lines in results if status == "200 whole"}
            print(
                f"{args.clients} concurrent exports of {args.events:,} events (half gzip) in {seconds:.1f} s: {dict(outcomes)}"
            )
            print(f"  line counts of the whole ones: {sorted(whole)}")
            print(f"  server peak RSS {peak_rss_mib(server.proc.pid):.0f} MiB (after start: {idle:.0f} MiB)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
