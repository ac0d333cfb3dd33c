"""Do reads block writes? Write latency (small /import batches, each acknowledged after its fsync)
with the server idle, then while heavy queries (full export + segmentation over every event) run
without pause in other connections. Prints median and p99 per phase.

    .venv/bin/python -m bench.bench_reliability [--events 300000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import event, machine, start_server
from tests.server import SA_SECRET, SA_USER, SECRET

WRITE_BATCH = 10
WRITERS = 2


def load(base: str, events: int) -> None:
    def send(start: int) -> None:
        batch = [event(i) for i in range(start, min(start + 2000, events))]
        r = httpx.post(f"{base}/import", json=batch, auth=(SECRET, ""), timeout=120)
        r.raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(0, events, 2000)))


def heavy_queries(base: str, stop: threading.Event, counts: list[int]) -> None:
    params = {"project_id": "4242", "from_date": "2024-01-01", "to_date": "2024-01-12"}
    with httpx.Client(base_url=base, auth=(SA_USER, SA_SECRET), timeout=300) as http:
        while not stop.is_set():
            with http.stream("GET", "/api/2.0/export", params=params) as r:
                for _ in r.iter_bytes():
                    pass
            http.get(
                "/api/2.0/segmentation",
                params={**params, "event": "Viewed Page", "on": 'properties["$current_url"]', "type": "unique"},
            )
            counts[0] += 1


def write_latencies(base: str, seconds: float, offset: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def writer(wid: int) -> None:
        n = offset + wid * 10_000_000
        with httpx.Client(base_url=base, auth=(SECRET, ""), timeout=60) as http:
            while time.monotonic() < deadline:
                batch = [event(n + i) for i in range(WRITE_BATCH)]
                n += WRITE_BATCH
                started = time.perf_counter()
                r = http.post("/import", json=batch)
                elapsed = time.perf_counter() - started
                r.raise_for_status()
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            started = time.perf_counter()
            load(server.url, args.events)
            print(f"loaded {args.events} events in {time.perf_counter() - started:.1f} s")
            idle = write_latencies(server.url, args.seconds, 100_000_000)
            stop = threading.Event()
            counts = [0]
            readers = [threading.Thread(target=heavy_queries, args=(server.url, stop, counts)) for _ in range(2)]
            for t in readers:
                t.start()
            time.sleep(1.0)  # let the heavy queries get going
            busy = write_latencies(server.url, args.seconds, 200_000_000)
            stop.set()
            for t in readers:
                t.join()
            for name, values in (("idle", idle), ("during heavy queries", busy)):
                print(
                    f"write latency ({WRITERS} writers x {WRITE_BATCH}-event /import), {name}: "
                    f"n={len(values)} median={statistics.median(values) * 1000:.1f} ms p99={p99(values) * 1000:.1f} ms "
                    f"max={max(values) * 1000:.1f} ms"
                )
            print(f"heavy query rounds completed meanwhile (export of all + segmentation): {counts[0]}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
