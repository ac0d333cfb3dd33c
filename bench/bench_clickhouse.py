"""The embedded engine (DuckDB) next to the ClickHouse engine on chDB, side by side in one run, on the same
rows, through the engine port (no HTTP: the figures are the engines', not the server's).

    .venv/bin/python -m bench.bench_clickhouse [--events 1000000] [--users 100000] [--runs 5] [--keep DIR]
    .venv/bin/python -m bench.bench_clickhouse --events 10000000 --users 1000000 --runs 3 --keep /work/benchkeep

Ingestion hands both engines the same WriteBatches (10,000 events each, as a large /import would),
generated a million events at a time (outside the timing) and waits for every acknowledgement; then each
analysis is run `--runs` times per engine, the engines alternating, and the median wall time is printed with
the median CPU time of the process (user + system, every thread: both engines run in process, so this is
the engine's CPU, the "server CPU" of the analysis). `--keep DIR` keeps both engines' data in
DIR/clickhouse-<events>-<users>/ and a rerun skips ingestion (its ingestion figure is then not measured).
An analysis an engine does not answer prints n/a.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from bench.common import machine, median
from mixhouse.domain.calendar import Buckets, Unit
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.export import ExportQuery
from mixhouse.domain.project import Project
from mixhouse.domain.query import funnels as f
from mixhouse.domain.query.retention import RetentionSpec
from mixhouse.domain.query.segmentation import SeriesSpec
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.base import Engine
from mixhouse.errors import NotSupportedByEngine
from mixhouse.expr import EventExpr

PROJECT = 4242
START_MS = 1_704_067_200_000  # 2024-01-01 UTC
DAYS = 30
DAY_MS = 86_400_000
NAMES = ("Viewed Page", "Signed Up", "Added To Cart", "Checkout", "Purchase")


def batches(events: int, users: int, size: int = 10_000, start: int = 0) -> list[WriteBatch]:
    out = []
    for first in range(start, events, size):
        rows = []
        for i in range(first, min(first + size, events)):
            props = {
                "plan": ("free", "pro", "team")[i % 3],
                "amount": i % 100 + 0.5,
                "$browser": ("Chrome", "Safari")[i % 2],
            }
            rows.append(
                StoredEvent(
                    PROJECT,
                    START_MS + (i * 2_654_435_761) % (DAYS * DAY_MS),
                    NAMES[(i * 7) % 5],
                    f"u{(i * 7919) % users}",
                    f"x{i}",
                    orjson.dumps(props),
                )
            )
        out.append(WriteBatch(events=rows))
    return out


def open_engine(name: str, data_dir: Path) -> Engine:
    from mixhouse.compose import open_engine as open_configured
    from mixhouse.settings import load_settings

    return open_configured(load_settings({"engine": name, "data_dir": data_dir}, env={}))


def ingest(engine: Engine, work: list[WriteBatch]) -> float:
    """Batches submitted as concurrent requests would (at most 20 waiting: under the write queue's cap)."""
    started = time.perf_counter()
    waiting: list[Any] = []
    for batch in work:
        if len(waiting) >= 20:
            waiting.pop(0).result()
        waiting.append(engine.submit(batch))
    for fut in waiting:
        fut.result()
    return time.perf_counter() - started


def chunks(events: int, users: int, chunk: int = 1_000_000) -> Iterator[list[WriteBatch]]:
    """The bench's batches a million events at a time (10M events at once would hold gigabytes)."""
    for first in range(0, events, chunk):
        yield batches(min(first + chunk, events), users, start=first)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def queries() -> dict[str, Callable[[Engine], Any]]:
    end = START_MS + DAYS * DAY_MS
    days = Buckets.of(START_MS, end, "UTC", Unit.DAY)
    weeks = Buckets.every(START_MS, START_MS + 14 * DAY_MS, "UTC", 7, date(2024, 1, 1))
    project = Project(PROJECT, "p", "t", "s", "k")

    def funnel(n: int) -> Callable[[Engine], Any]:
        steps = tuple(f.FunnelStepSpec(name, None) for name in NAMES[:n])
        return lambda e: e.query(
            f.FunnelSpec(PROJECT, START_MS, START_MS + 14 * DAY_MS, 7 * DAY_MS, steps, False, weeks)
        )

    return {
        "export (all rows, bytes)": lambda e: sum(
            len(c) for c in e.export_lines(ExportQuery(project, START_MS, end, None, None, None, False))
        ),
        "segmentation": lambda e: e.query(SeriesSpec(PROJECT, ("Viewed Page",), days)),
        "segmentation on plan": lambda e: e.query(
            SeriesSpec(PROJECT, ("Viewed Page",), days, key=EventExpr.parse('properties["plan"]'), limit=60)
        ),
        "funnel, 3 steps": funnel(3),
        "funnel, 5 steps": funnel(5),
        "retention (weekly)": lambda e: e.query(
            RetentionSpec(
                PROJECT,
                START_MS,
                START_MS + 14 * DAY_MS,
                "UTC",
                False,
                "Signed Up",
                None,
                "Purchase",
                None,
                "week",
                date(2024, 1, 1),
                1,
                3,
            )
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="keep both engines' data here and reuse it on a rerun")
    args = ap.parse_args()
    print(f"machine: {machine()} (shared with other work: figures are indicative)")
    print(f"{args.events:,} events, {args.users:,} users, {DAYS} days; medians of {args.runs} runs, seconds")
    print("each cell: wall seconds [process CPU seconds]\n")
    names = ("duckdb", "chdb")
    width = 26
    print(f"{'':{width}}  {'duckdb':>30}  {'chdb':>30}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep / f"clickhouse-{args.events}-{args.users}" if args.keep else Path(tmp)
        kept = (root / "ingested").exists()
        if args.keep and not kept and root.exists():
            shutil.rmtree(root)  # a run stopped mid-ingestion: its rows would be ingested twice
        engines = {name: open_engine(name, root / name) for name in names}
        row: dict[str, str] = {}
        if kept:
            row = {name: "kept (not measured)" for name in names}
        else:
            wall = {name: 0.0 for name in names}
            cpu = {name: 0.0 for name in names}
            for work in chunks(args.events, args.users):
                for name in names:
                    before = cpu_seconds()
                    wall[name] += ingest(engines[name], work)
                    cpu[name] += cpu_seconds() - before
            row = {n: f"{wall[n]:.1f} [{cpu[n]:.1f}] ({args.events / wall[n]:,.0f}/s)" for n in names}
            if args.keep:
                (root / "ingested").write_text("")
        print(f"{'ingestion':{width}}  {row['duckdb']:>30}  {row['chdb']:>30}", flush=True)
        for label, run in queries().items():
            timings: dict[str, list[float]] = {n: [] for n in names}
            cpus: dict[str, list[float]] = {n: [] for n in names}
            answers: dict[str, Any] = {}
            for _ in range(args.runs):  # the engines alternate, so that load from elsewhere hits both
                for name in names:
                    started, before = time.perf_counter(), cpu_seconds()
                    try:
                        answer = run(engines[name])
                        answers[name] = sorted(map(repr, answer)) if isinstance(answer, list) else answer
                    except NotSupportedByEngine:
                        answers[name] = None
                        timings[name].append(float("nan"))
                        continue
                    timings[name].append(time.perf_counter() - started)
                    cpus[name].append(cpu_seconds() - before)
            for name in names:
                t = median(timings[name])
                row[name] = "n/a" if t != t else f"{t:.3f} [{median(cpus[name]):.2f}]"
            if answers["duckdb"] is not None and answers["chdb"] is not None and answers["duckdb"] != answers["chdb"]:
                row["chdb"] += " (answer differs!)"
            print(f"{label:{width}}  {row['duckdb']:>30}  {row['chdb']:>30}", flush=True)
        for engine in engines.values():
            engine.close()
    print(f"(pid {os.getpid()} done)")


if __name__ == "__main__":
    main()
