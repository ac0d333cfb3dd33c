"""Ingestion and export throughput, with fsync on (every acknowledged write is on disk).

    .venv/bin/python -m bench.bench_ingest [--runs 5] [--export-events 1000000]

Needs `wrk` (Debian package) for the /track figure. Prints: events/s into /import (2000-event batches), requests/s into /track (single events), each
the median of several runs; export events/s and the server's peak RSS while exporting 1M events.
The load generator runs on the same machine and shares its cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.common import event, machine, median, peak_rss_mib, start_server
from tests.server import SA_SECRET, SA_USER, SECRET, TOKEN


async def _import_run(url: str, batches: list[bytes], concurrency: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            r = await client.post(
                f"{url}/import?strict=1", content=body, auth=(SECRET, ""), headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 200, r.text

    async with httpx.AsyncClient(timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started


TRACK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/track", nil,
    'data={"event":"Tracked","properties":{"token":"%(token)s","distinct_id":"t' .. counter .. '","time":%(now)d}}')
end
"""


def _track_run(url: str, seconds: int, connections: int) -> float:
    """Requests/s that wrk (a C load generator; Python clients top out first) gets through /track."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(TRACK_LUA % {"token": TOKEN, "now": int(time.time())})
        script.flush()
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url + "/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def _import_batches(start: int, count: int, size: int = 2000) -> list[bytes]:
    return [orjson.dumps([event(i) for i in range(start + b * size, start + (b + 1) * size)]) for b in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--import-batches", type=int, default=25, help="2000-event batches per run")
    parser.add_argument("--track-seconds", type=int, default=5, help="length of each wrk run against /track")
    parser.add_argument("--export-events", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            rates = []
            for run in range(args.runs):
                batches = _import_batches(run * args.import_batches * 2000, args.import_batches)
                seconds = asyncio.run(_import_run(server.url, batches, concurrency=4))
                rates.append(args.import_batches * 2000 / seconds)
            print(
                f"/import 2000-event batches, 4 clients: median {median(rates):,.0f} events/s "
                f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
            )

            rates = [_track_run(server.url, args.track_seconds, connections=32) for _ in range(args.runs)]
            print(
                f"/track single events, 32 connections: median {median(rates):,.0f} requests/s "
                f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
            )

            # Fill up to the export size, then restart so that peak RSS reflects the export alone.
            loaded = args.runs * args.import_batches * 2000
            remaining = max(0, args.export_events - loaded)
            start = loaded
            while remaining > 0:
                n = min(50, (remaining + 1999) // 2000)
                asyncio.run(_import_run(server.url, _import_batches(start, n), concurrency=4))
                start += n * 2000
                remaining -= n * 2000
        finally:
            server.stop()

        server.start()
        try:
            assert server.proc is not None
            before = peak_rss_mib(server.proc.pid)
            timings = []
            lines = 0
            for _ in range(3):
                started = time.perf_counter()
                lines = 0
                with httpx.stream(
                    "GET",
                    f"{server.url}/api/2.0/export",
                    auth=(SA_USER, SA_SECRET),
                    timeout=600,
                    params={"project_id": "4242", "from_date": "2023-12-01", "to_date": "2024-12-31"},
                ) as r:
                    for chunk in r.iter_bytes():
                        lines += chunk.count(b"\n")
                timings.append(time.perf_counter() - started)
            peak = peak_rss_mib(server.proc.pid)
        finally:
            server.stop()
        print(
            f"/export of {lines:,} events: median {lines / median(timings):,.0f} events/s "
            f"({median(timings):.2f} s); server peak RSS {peak:,.0f} MiB (idle after restart {before:,.0f} MiB)"
        )


if __name__ == "__main__":
    main()
