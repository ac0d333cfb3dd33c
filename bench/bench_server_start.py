"""What one test server costs: start to a healthy /healthz, and SIGTERM to exit, on a fresh data folder
(tests/server.py, as the fixtures use it). Every fixture that starts a server pays both, so they bound
how many servers the suite can afford.

Median wall time of the start and of the stop, and the median CPU time of the whole server process
(imports, the store opened, one authenticated query, shut down), over --runs servers one after another.

    .venv/bin/python -m bench.bench_server_start [--runs 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import machine
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_server(tmp: Path) -> tuple[float, float, float]:
    """(start s, stop s, CPU s of the server process)."""
    data_dir = tmp / "data"
    seed_catalog(data_dir)
    cpu = children_cpu()
    started = time.perf_counter()
    server = ServerProcess(data_dir).start()
    start = time.perf_counter() - started
    response = httpx.get(
        f"{server.url}/api/query/events/names", params={"project_id": PROJECT_ID}, auth=(SA_USER, SA_SECRET)
    )
    assert response.status_code == 200, response.text
    started = time.perf_counter()
    server.stop()
    stop = time.perf_counter() - started
    return start, stop, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_server(Path(tmp)))
    start, stop, cpu = (statistics.median(column) for column in zip(*runs, strict=True))
    print(f"start to healthy: median {start:.2f} s; stop (SIGTERM to exit): median {stop:.2f} s")
    print(f"CPU of one server process (start, one query, stop): median {cpu:.2f} s over {args.runs} servers")


if __name__ == "__main__":
    main()
