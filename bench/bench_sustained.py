"""Do a served store's queries slow down for good after sustained ingestion over HTTP? A real server on a
bulk-written store answers a few queries; then `/import` is fed 2,000-event batches from several clients
for a while (as a load test would); once writes pause, the same queries are timed again, and again after
a restart. Each figure is the median over HTTP and the server process's CPU time for it (all threads;
the steadier figure on a shared machine), with the server's resident size.

    .venv/bin/python -m bench.bench_sustained [--events 500000] [--seconds 60] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from bench.bench_funnels import AUTH, FROM, START_MS, TO, write_events
from bench.common import machine, median
from bench.compare_revisions import cpu_seconds, save_funnel
from tests.server import PROJECT_ID, SECRET, ServerProcess, seed_catalog

DAY_MS = 86_400_000


def batch(start: int, n: int, users: int) -> bytes:
    """`n` events like the bulk-written ones (names e0..e7, users u0.., a `plan`), each with its own
    `$insert_id`, spread over the same 14 days."""
    return orjson.dumps(
        [
            {
                "event": f"e{i % 8}",
                "properties": {
                    "time": START_MS + (i * 7919) % (14 * DAY_MS),
                    "distinct_id": f"u{(i * 31) % users}",
                    "$insert_id": f"s{i}",
                    "plan": str(i % 3),
                },
            }
            for i in range(start, start + n)
        ]
    )


def feed(url: str, seconds: float, clients: int, users: int) -> tuple[int, float]:
    """`clients` threads sending 2,000-event batches for `seconds`: events stored, events/s."""
    stored = [0] * clients
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        with httpx.Client(timeout=120) as http:
            i = k * 10**9
            while time.monotonic() < stop:
                r = http.post(
                    f"{url}/import",
                    params={"strict": "1", "project_id": PROJECT_ID},
                    content=batch(i, 2000, users),
                    headers={"Content-Type": "application/json"},
                    auth=(SECRET, ""),
                )
                assert r.status_code == 200, r.text
                stored[k] += 2000
                i += 2000

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(stored), sum(stored) / (time.perf_counter() - started)


def measure(server: ServerProcess, funnel_id: int, runs: int) -> str:
    general = {"event": "e0", "from_date": FROM, "to_date": TO, "on": 'properties["plan"]'}
    queries: list[tuple[str, str, dict[str, Any]]] = [
        ("segmentation on plan", "segmentation", general),
        ("unique", "segmentation", {**general, "type": "unique"}),
        ("3-step funnel", "funnels", {"funnel_id": funnel_id, "from_date": FROM, "to_date": TO, "interval": 14}),
    ]
    out = []
    with httpx.Client(timeout=600) as http:
        for label, path, params in queries:
            wall, cpu = [], []
            for run in range(runs + 1):  # the first is untimed
                c0, t0 = cpu_seconds(server), time.perf_counter()
                r = http.get(f"{server.url}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH)
                assert r.status_code == 200, r.text
                if run:
                    wall.append(time.perf_counter() - t0)
                    cpu.append(cpu_seconds(server) - c0)
            out.append(f"{label} {median(wall) * 1000:.0f} ms (cpu {median(cpu) * 1000:.0f} ms)")
    assert server.proc is not None
    rss = psutil.Process(server.proc.pid).memory_info().rss / 2**20
    return ", ".join(out) + f"; server RSS {rss:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000, help="events written in bulk first")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(machine(), f"(load average {os.getloadavg()[0]:.1f}: figures vary; the cpu ones less)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        write_events(data_dir, args.events, args.users)
        seed_catalog(data_dir)
        server = ServerProcess(data_dir).start(timeout=120)
        try:
            with httpx.Client(timeout=60) as http:
                funnel_id = save_funnel(http, server.url, 3, "uniques")
            print(f"{args.events:,} events written in bulk: {measure(server, funnel_id, args.runs)}")
            stored, rate = feed(server.url, args.seconds, args.clients, args.users)
            print(f"{stored:,} more events into /import in {args.seconds:.0f} s at {rate:,.0f} events/s")
            print(f"  right after:   {measure(server, funnel_id, args.runs)}")
            time.sleep(10)
            print(f"  idle 10 s on:  {measure(server, funnel_id, args.runs)}")
        finally:
            server.stop()
        server = ServerProcess(data_dir).start(timeout=120)
        try:
            print(f"  restarted:     {measure(server, funnel_id, args.runs)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
