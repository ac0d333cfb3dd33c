"""What the DuckDB writer's commit of a 2,000-event /import batch handed over as columns costs, in process
(no HTTP, no worker): per segment of batches as the store grows, events/s of the writer alone, its
thread's CPU per event, the process's (DuckDB's threads included), and the parts: the property counts'
catch-up, the insert, the dedup step and the commit (fsync on). A checkpoint shows as a segment whose
commit costs several times the others.

    .venv/bin/python -m bench.bench_writer [--batches 400] [--segment 50]

The batches are the events of bench/bench_ingest.py, validated into columns before each segment is timed."""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.common import event, machine
from mixhouse.domain import columns as cols
from mixhouse.domain import events as ev
from mixhouse.domain.project import Project
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import engine as duckdb_engine
from mixhouse.engine.duckdb import property_columns, property_counts

BATCH = 2000
PROJECT = Project(id=1, name="bench", token="t", secret="s", api_key="k")


def _timed(spent: dict[str, float], label: str, f: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return f(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - started

    return timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--segment", type=int, default=50, help="batches per printed line")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    spent: dict[str, float] = collections.defaultdict(float)
    # Each part of the commit timed on the writer's thread (restored by the process's exit).
    counts = property_counts.CountWriter
    counts.before_write = _timed(spent, "count", counts.before_write)  # type: ignore[method-assign]
    slots = property_columns.SlotWriter
    slots.insert_table = staticmethod(_timed(spent, "insert", slots.insert_table))  # type: ignore[method-assign]
    duckdb_engine.mark_superseded = _timed(spent, "dedup", duckdb_engine.mark_superseded)
    engine_class = duckdb_engine.DuckDBEngine
    engine_class._link_and_commit = _timed(spent, "commit", engine_class._link_and_commit)  # type: ignore[method-assign]
    ctx = ev.IngestContext(endpoint=ev.Endpoint.IMPORT, received_ms=int(time.time() * 1000), api_host="bench")
    print(f"{'batches':>11} {'events/s':>9} {'thread':>7} {'process':>8}   µs an event: count insert dedup commit")
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_class(Path(tmp) / "data", idle_checkpoint_seconds=3600)
        try:
            for first in range(0, args.batches, args.segment):
                parts = []
                for b in range(first, first + args.segment):
                    body = orjson.dumps([event(b * BATCH + i) for i in range(BATCH)])
                    part = cols.import_columns(body, PROJECT, ctx, locating=False)
                    assert part is not None
                    parts.append(part)
                spent.clear()
                wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
                for part in parts:
                    engine._write_group([WriteBatch(columns=[part])])
                wall = time.perf_counter() - wall
                thread, process = time.thread_time() - thread, time.process_time() - process
                n = args.segment * BATCH
                print(
                    f"{first:>5}-{first + args.segment:<5} {n / wall:>9,.0f} {thread / n * 1e6:>7.2f} "
                    f"{process / n * 1e6:>8.2f}   "
                    + " ".join(f"{spent[k] / n * 1e6:.2f}" for k in ("count", "insert", "dedup", "commit")),
                    flush=True,
                )
        finally:
            engine.close()


if __name__ == "__main__":
    main()
