"""/track's server CPU per request, by thread: the event loop's share (HTTP parsing, middleware, handler,
the reply's write) apart from the writer's (the group commits) and the rest.

    .venv/bin/python -m bench.bench_track_threads [--ref main] [--runs 3] [--seconds 8] [--connections 32]

wrk (single-event POSTs, as bench_ingest --track-only sends them) runs against a server of this checkout
and, with `--ref`, one of another revision, alternating which goes first each round. Prints the medians
of requests/s, p50/p99 acknowledgement latency and the CPU microseconds per request of the event-loop
thread, the writer thread (the busiest other one) and all other threads (from /proc/PID/task/*/stat), and of wrk itself: the load
generator shares the machine's cores with the servers, so what a request costs in all (server + wrk)
bounds the rate the cores allow.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from bench.bench_ingest import _revision, _track_timed
from bench.common import machine, median
from tests.server import ServerProcess, seed_catalog

_TICKS = os.sysconf("SC_CLK_TCK")


def thread_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of `pid`, by thread id (the main thread's id is `pid`)."""
    found: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        found[tid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def by_role(pid: int, before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds spent between two readings: `loop` (the main thread, where the event loop runs),
    `writer` (the busiest other thread: Python does not give its threads' names to the OS, and under
    ingestion the busiest is the writer) and `other` (the rest)."""
    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    loop = spent.pop(str(pid), 0.0)
    writer = max(spent.values(), default=0.0)
    return {"loop": loop, "writer": writer, "other": sum(spent.values()) - writer}


def _children_seconds() -> float:
    """CPU seconds of this process's finished children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(server: ServerProcess, seconds: int, connections: int) -> dict[str, float]:
    assert server.proc is not None
    before = thread_seconds(server.proc.pid)
    wrk_before = _children_seconds()
    rate, p50, p99 = _track_timed(server.url, seconds, connections)
    wrk = _children_seconds() - wrk_before
    after = thread_seconds(server.proc.pid)
    requests = rate * seconds
    figures = {"rate": rate, "p50": p50, "p99": p99, "wrk": wrk / requests * 1e6}
    for role, seconds in by_role(server.proc.pid, before, after).items():
        figures[role] = seconds / requests * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", help="a git revision to measure side by side with this checkout")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        sources: dict[str, Path | None] = {"this": None}
        with _revision(args.ref, Path(tmp)) if args.ref else nullcontext() as worktree:
            if args.ref:
                sources[args.ref] = worktree
            servers: dict[str, ServerProcess] = {}
            try:
                for name, source in sources.items():
                    data_dir = Path(tmp) / name.replace("/", "_") / "data"
                    seed_catalog(data_dir)
                    servers[name] = ServerProcess(data_dir, source_dir=source).start(timeout=120)
                time.sleep(2)  # start-up work (kernel warm-up, first checkpoint) out of the way
                for server in servers.values():
                    _track_timed(server.url, 2, args.connections)  # warm
                runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                for run in range(args.runs):
                    order = list(servers) if run % 2 == 0 else list(reversed(servers))
                    for name in order:
                        runs[name].append(measure(servers[name], args.seconds, args.connections))
            finally:
                for server in servers.values():
                    server.stop()
    print(f"/track, {args.connections} connections, medians of {args.runs} runs of {args.seconds} s")
    header = f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'loop us':>8} {'writer us':>10} {'other us':>9}"
    print(f"{'':<12} {header} {'wrk us':>7}")
    for name, figures in runs.items():
        m = {k: median([f[k] for f in figures]) for k in figures[0]}
        row = f"{m['rate']:>8,.0f} {m['p50']:>8.1f} {m['p99']:>8.1f} {m['loop']:>8.0f} {m['writer']:>10.0f}"
        print(f"{name:<12} {row} {m['other']:>9.0f} {m['wrk']:>7.0f}")
    print("us: CPU microseconds per request: the server's by thread (loop: the event loop's), and wrk's")


if __name__ == "__main__":
    main()
