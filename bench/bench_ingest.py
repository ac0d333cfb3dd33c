"""Ingestion and export throughput, with fsync on (every acknowledged write is on disk).

    .venv/bin/python -m bench.bench_ingest [--runs 5] [--export-events 1000000] [--ref fc873be]
    .venv/bin/python -m bench.bench_ingest --ref main --track-only [--connections 32] [--track-seconds 5]

Needs `wrk` (Debian package) for the /track figure. Prints: events/s into /import (2000-event batches)
and the p99 acknowledgement latency of those requests, requests/s into /track (single events) and wrk's
p99 latency, each the median of several runs; export events/s and the server's peak RSS while exporting
1M events. The load generator runs on the same machine and shares its cores with the server.

`--checkpoint-thresholds 16777216,268435456` compares /import (events/s, p99, CPU) between servers of this
checkout that differ only in that setting, alternating which goes first.

`--ref REV` serves another git revision (a temporary worktree, same venv) beside this checkout and runs
every ingestion round against both, alternating which goes first, so that a shared machine's noise falls
on both alike: the figures print side by side (before/after), with the server's CPU time per event or
request (steadier than the rates when other work shares the cores). `--export-events 0` skips the export;
`--track-only` measures /track alone (wrk's p50 and p99 acknowledgement latency beside the rate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from bench.common import cpu_seconds, event, machine, median, peak_rss_mib, start_server
from tests.server import SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

ROOT = Path(__file__).resolve().parent.parent


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _import_timed(url: str, batches: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """(seconds for all batches, each request's acknowledgement latency in seconds)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            sent = time.perf_counter()
            r = await client.post(
                f"{url}/import?strict=1", content=body, auth=(SECRET, ""), headers={"Content-Type": "application/json"}
            )
            latencies.append(time.perf_counter() - sent)
            assert r.status_code == 200, r.text

    async with httpx.AsyncClient(timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


async def _import_run(url: str, batches: list[bytes], concurrency: int) -> float:
    return (await _import_timed(url, batches, concurrency))[0]


# Each event carries a `$insert_id` unique across wrk's threads, as the SDKs send one: the writer's dedup
# step runs as it does for real traffic.
TRACK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
request = function()
  counter = counter + 1
  local id = tid .. "-" .. counter
  return wrk.format(nil, "/track", nil,
    'data={"event":"Tracked","properties":{"token":"%(token)s","distinct_id":"t' .. id ..
    '","time":%(now)d,"$insert_id":"i' .. id .. '"}}')
end
"""


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _track_timed(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(requests/s, p50 and p99 latency in ms) that wrk (a C load generator; Python clients top out first)
    gets through /track."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(TRACK_LUA % {"token": TOKEN, "now": int(time.time())})
        script.flush()
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url + "/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: int) -> float:
        found = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(found.group(1)) * _UNIT_MS[found.group(2)] if found else float("nan")

    return rate, percentile(50), percentile(99)


def _import_batches(start: int, count: int, size: int = 2000) -> list[bytes]:
    return [orjson.dumps([event(i) for i in range(start + b * size, start + (b + 1) * size)]) for b in range(count)]


def _cpu_seconds(server: ServerProcess) -> float:
    """CPU time the server process has used, all threads and its child processes (the /import workers): on
    a shared machine a steadier measure of the work per event than the wall-clock rates."""
    assert server.proc is not None
    return cpu_seconds(server.proc.pid)


@contextmanager
def _revision(ref: str, base: Path, kept: Path | None = None) -> Iterator[Path]:
    """A git worktree of `ref` with its query kernels compiled (a server compiling them in the background
    would take the cores from the measurement): a temporary one, or `kept` (made once, reused)."""
    worktree = kept or base / "baseline"
    if not worktree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), ref], check=True)
    env = {**os.environ, "PYTHONPATH": str(worktree)}
    subprocess.run([sys.executable, "-m", "mixhouse.engine.kernels"], cwd=worktree, env=env, check=True)
    try:
        yield worktree
    finally:
        if kept is None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True)


def side_by_side(
    ref: str,
    runs: int,
    import_batches: int,
    track_seconds: int,
    kept: Path | None = None,
    *,
    track_only: bool = False,
    connections: int = 32,
    clients: int = 4,
) -> None:
    """Each round: /import (unless `track_only`, `clients` at once) then /track against this checkout and
    `ref`, in alternating order."""
    with tempfile.TemporaryDirectory() as tmp, _revision(ref, Path(tmp), kept) as worktree:
        servers: dict[str, ServerProcess] = {}
        for name, source in (("this", None), (ref, worktree)):
            data_dir = Path(tmp) / name / "data"
            seed_catalog(data_dir)
            servers[name] = ServerProcess(data_dir, source_dir=source).start(timeout=120)
        try:
            keys = ("import", "import_p99", "import_cpu", "track", "track_p50", "track_p99", "track_cpu")
            figures: dict[str, dict[str, list[float]]] = {name: {k: [] for k in keys} for name in servers}
            if not track_only:  # warm up, unmeasured: a server starts its /import workers on the first large body
                for server in servers.values():
                    asyncio.run(_import_timed(server.url, _import_batches(10**9, 4), concurrency=clients))
            for run in range(runs):
                order = list(servers) if run % 2 == 0 else list(reversed(servers))
                batches = _import_batches(run * import_batches * 2000, import_batches)
                for name in [] if track_only else order:
                    cpu = _cpu_seconds(servers[name])
                    seconds, latencies = asyncio.run(_import_timed(servers[name].url, batches, concurrency=clients))
                    figures[name]["import_cpu"].append(
                        (_cpu_seconds(servers[name]) - cpu) / (import_batches * 2000) * 1e6
                    )
                    figures[name]["import"].append(import_batches * 2000 / seconds)
                    figures[name]["import_p99"].append(p99(latencies) * 1000)
                for name in order:
                    cpu = _cpu_seconds(servers[name])
                    rate, p50, p99_ms = _track_timed(servers[name].url, track_seconds, connections=connections)
                    figures[name]["track_cpu"].append(
                        (_cpu_seconds(servers[name]) - cpu) / (rate * track_seconds) * 1e6
                    )
                    figures[name]["track"].append(rate)
                    figures[name]["track_p50"].append(p50)
                    figures[name]["track_p99"].append(p99_ms)
        finally:
            for server in servers.values():
                server.stop()
    print(f"medians of {runs} rounds; each round runs both sides, alternating which goes first")
    print(f"{'':<44} {'this':>12} {ref:>12} {'ratio':>7}")
    rows = (
        (f"/import events/s (2000-event batches, {clients} clients)", "import", True),
        ("/import p99 acknowledgement (ms)", "import_p99", False),
        ("/import server CPU per event (us)", "import_cpu", False),
        (f"/track requests/s (single events, {connections} conns)", "track", True),
        ("/track p50 acknowledgement (ms)", "track_p50", False),
        ("/track p99 acknowledgement (ms)", "track_p99", False),
        ("/track server CPU per request (us)", "track_cpu", False),
    )
    for label, key, more_is_better in rows:
        if not figures["this"][key]:
            continue
        ours, theirs = median(figures["this"][key]), median(figures[ref][key])
        ratio = ours / theirs if more_is_better else theirs / ours
        print(f"{label:<44} {ours:>12,.1f} {theirs:>12,.1f} {ratio:>6.2f}x")
    print("ratio above 1: this checkout is better; runs:")
    for name, values in figures.items():
        print(f"  {name}: " + "; ".join(f"{k} {', '.join(f'{v:,.0f}' for v in vs)}" for k, vs in values.items()))


def by_checkpoint_threshold(thresholds: list[int], runs: int, import_batches: int) -> None:
    """/import against servers of this checkout that differ only in MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES,
    in alternating order each round: events/s, p99 acknowledgement and server CPU per event."""
    with tempfile.TemporaryDirectory() as tmp:
        servers: dict[int, ServerProcess] = {}
        for threshold in thresholds:
            data_dir = Path(tmp) / str(threshold) / "data"
            seed_catalog(data_dir)
            env = {"MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES": str(threshold)}
            servers[threshold] = ServerProcess(data_dir, env=env).start(timeout=120)
        figures: dict[int, dict[str, list[float]]] = {t: {"rate": [], "p99": [], "cpu": []} for t in servers}
        try:
            for run in range(runs):
                batches = _import_batches(run * import_batches * 2000, import_batches)
                for threshold in thresholds if run % 2 == 0 else list(reversed(thresholds)):
                    server = servers[threshold]
                    cpu = _cpu_seconds(server)
                    seconds, latencies = asyncio.run(_import_timed(server.url, batches, concurrency=4))
                    figures[threshold]["cpu"].append((_cpu_seconds(server) - cpu) / (import_batches * 2000) * 1e6)
                    figures[threshold]["rate"].append(import_batches * 2000 / seconds)
                    figures[threshold]["p99"].append(p99(latencies) * 1000)
        finally:
            for server in servers.values():
                server.stop()
    print(f"/import by checkpoint threshold, medians of {runs} rounds of {import_batches} 2000-event batches:")
    for threshold, f in figures.items():
        print(
            f"  {threshold:>12,} bytes: {median(f['rate']):>9,.0f} events/s, p99 {median(f['p99']):>7,.0f} ms, "
            f"max p99 {max(f['p99']):>7,.0f} ms, server CPU {median(f['cpu']):5.1f} us/event"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--import-batches", type=int, default=25, help="2000-event batches per run")
    parser.add_argument("--track-seconds", type=int, default=5, help="length of each wrk run against /track")
    parser.add_argument("--export-events", type=int, default=1_000_000)
    parser.add_argument("--ref", help="a git revision to measure side by side with this checkout (e.g. fc873be)")
    parser.add_argument("--ref-worktree", type=Path, help="keep the revision's worktree here and reuse it")
    parser.add_argument(
        "--checkpoint-thresholds",
        help="comma-separated MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES values to compare on /import (then exit)",
    )
    parser.add_argument("--track-only", action="store_true", help="with --ref: measure /track alone")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections against /track")
    parser.add_argument("--import-clients", type=int, default=4, help="clients sending /import batches at once")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.checkpoint_thresholds:
        values = [int(v) for v in args.checkpoint_thresholds.split(",")]
        by_checkpoint_threshold(values, args.runs, args.import_batches)
        return
    if args.ref:
        side_by_side(
            args.ref,
            args.runs,
            args.import_batches,
            args.track_seconds,
            args.ref_worktree,
            track_only=args.track_only,
            connections=args.connections,
            clients=args.import_clients,
        )
        if not args.export_events or args.track_only:
            return

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            rates = []
            latencies: list[float] = []
            for run in range(args.runs):
                batches = _import_batches(run * args.import_batches * 2000, args.import_batches)
                seconds, run_latencies = asyncio.run(
                    _import_timed(server.url, batches, concurrency=args.import_clients)
                )
                rates.append(args.import_batches * 2000 / seconds)
                latencies.append(p99(run_latencies) * 1000)
            print(
                f"/import 2000-event batches, {args.import_clients} clients: median {median(rates):,.0f} events/s, "
                f"p99 acknowledgement {median(latencies):,.0f} ms (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
            )

            tracked = [_track_timed(server.url, args.track_seconds, args.connections) for _ in range(args.runs)]
            rates = [rate for rate, _, _ in tracked]
            print(
                f"/track single events, {args.connections} connections: median {median(rates):,.0f} requests/s, "
                f"p50 acknowledgement {median([p50 for _, p50, _ in tracked]):,.1f} ms, "
                f"p99 {median([p99_ms for _, _, p99_ms in tracked]):,.1f} ms "
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
