"""The review's runaway queries, rerun over HTTP against a real server: a minute-unit segmentation
with `on` and limit=10000 under a 2 s project timeout (once, and two at once), and one without `on`
under 0.5 s. Prints status, seconds and body size of each; before the bounds, the first answered 200
after 133 s with 532 MB.

    .venv/bin/python -m bench.bench_bounds [--events 2000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.bench_segmentation import DATES, PROJECT, load
from bench.common import machine
from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from mixhouse.engine.duckdb import DuckDBEngine
from tests.server import ServerProcess


def ask(base: str, **params: str) -> str:
    started = time.perf_counter()
    response = httpx.get(
        f"{base}/api/query/segmentation",
        params={"project_id": str(PROJECT), "event": "Viewed Page", **DATES, **params},
        auth=("bench", "bench-secret"),
        timeout=600,
    )
    seconds = time.perf_counter() - started
    return f"{response.status_code} in {seconds:.2f} s, {len(response.content):,} bytes: {response.text[:120]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    args = parser.parse_args()
    print(machine(), "(shared with other work: figures vary)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        catalog = Catalog(data_dir)
        catalog.create_project(
            project_id=PROJECT, name="bench", token="T", secret="S", api_key="K", timezone="America/New_York"
        )
        catalog.create_service_account(username="bench", secret="bench-secret", project_id=PROJECT, role=Role.OWNER)
        engine = DuckDBEngine(data_dir)
        load(engine, args.events, args.users)
        engine.close()
        server = ServerProcess(data_dir).start()
        try:
            on_user = {
                "unit": "minute",
                "on": 'properties["$current_url"] + "/" + properties["plan"]',
                "limit": "10000",
            }
            catalog.set_rate_limits(PROJECT, '{"query": {"timeout_seconds": 2}}')
            print(f"{args.events:,} events; 2 s project timeout")
            print("  minute, on, limit=10000:      ", ask(server.url, **on_user))
            with ThreadPoolExecutor(2) as pool:
                for answer in pool.map(lambda _: ask(server.url, **on_user), range(2)):
                    print("  the same, two at once:        ", answer)
            catalog.set_rate_limits(PROJECT, '{"query": {"timeout_seconds": 0.5}}')
            print("  minute, no on, 0.5 s timeout: ", ask(server.url, unit="minute"))
            catalog.set_rate_limits(PROJECT, "none")
            print("  minute, no on, no project limit:", ask(server.url, unit="minute"))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
