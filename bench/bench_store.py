"""Do queries slow down for good after sustained ingestion, and does memory keep growing? The store is
loaded the way SDK traffic arrives (many small group commits through the real writer, with 1% duplicate
`$insert_id`s), queries are timed idle, and the store's shape is printed: row groups, WAL size, rows in
the dedup table, DuckDB's memory, the process's RSS. Then the same after the engine's idle checkpoint,
and after a restart.

    .venv/bin/python -m bench.bench_store                          # 300k events, quick
    .venv/bin/python -m bench.bench_store --events 1650000          # the review's 60 s at ~27k events/s
    .venv/bin/python -m bench.bench_store --memory-limit 512MB      # RSS under a lower cap

It also measures what a checkpoint needs: the growth of the database file while the WAL is written
into it, against the WAL's size (the writer keeps twice the larger of the WAL and 16 MB free).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.common import machine
from mixhouse.catalog import Catalog
from mixhouse.domain.auth import Caller, Via
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.project import Role
from mixhouse.domain.query import funnels, segmentation
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.saved.funnels import Counting, FunnelStep, FunnelStore, LengthUnit
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import DuckDBEngine

PROJECT = 1
START_MS = 1_704_067_200_000  # 2024-01-01 UTC
DATES = {"from_date": "2024-01-01", "to_date": "2024-01-30"}


def events(start: int, n: int) -> list[StoredEvent]:
    out = []
    for i in range(start, start + n):
        dup = i - 1 if i % 100 == 0 and i else i  # 1% repeat the previous insert id
        props = {
            "plan": ("free", "pro", "team")[i % 3],
            "$browser": ("Chrome", "Firefox", "Safari")[i % 3],
            "amount": i % 1000 + 0.5,
            "$current_url": f"https://example.com/page/{i % 50}",
        }
        out.append(
            StoredEvent(
                PROJECT,
                START_MS + (dup * 7919) % (30 * 86_400_000),
                ("Viewed Page", "Signed Up", "Purchase", "Added To Cart")[dup % 4],
                f"user-{dup % 50_000}",
                f"ins-{dup}",
                orjson.dumps(props),
            )
        )
    return out


def ingest(engine: DuckDBEngine, total: int, batch: int, writers: int, first: int = 0) -> float:
    """Many small requests at once, as SDKs send them: each a WriteBatch through the group-commit writer."""
    started = time.perf_counter()

    def send(start: int) -> None:
        engine.submit(WriteBatch(events=events(start, min(batch, first + total - start)))).result()

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(send, range(first, first + total, batch)))
    return total / (time.perf_counter() - started)


def shape(engine: DuckDBEngine, data_dir: Path) -> str:
    conn = engine.reader()
    groups = conn.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('events')").fetchone()
    superseded = conn.execute("SELECT count(*) FROM superseded_events").fetchone()
    memory = conn.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
    wal = data_dir / "events.duckdb.wal"
    wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    db_mb = (data_dir / "events.duckdb").stat().st_size / 2**20
    rss = psutil.Process(os.getpid()).memory_info().rss / 2**20
    return (
        f"row groups {groups[0] if groups else '?'}, superseded rows {superseded[0] if superseded else '?'},"
        f" db {db_mb:.0f} MB, WAL {wal_mb:.1f} MB, DuckDB memory {(memory[0] or 0) / 2**20:.0f} MB, RSS {rss:.0f} MB"
    )


def timed(fn: Callable[[], Any], repeat: int) -> str:
    """Median wall time and median CPU time of this process (all threads, DuckDB's included): on a shared
    machine the CPU time is the steadier figure."""
    runs, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return f"{statistics.median(runs) * 1000:.0f} ms (cpu {statistics.median(cpu) * 1000:.0f} ms)"


def queries(engine: DuckDBEngine, catalog: Catalog, repeat: int) -> str:
    project = catalog.project_by_id(PROJECT)
    assert project is not None
    caller = Caller(project, Via.SECRET, Role.OWNER)

    def run(**params: str) -> Callable[[], Any]:
        return lambda: segmentation.segmentation(QueryContext(caller, params, engine, catalog))

    general = timed(run(event="Viewed Page", on='properties["plan"]', **DATES), repeat)
    unique = timed(run(event="Viewed Page", on='properties["plan"]', type="unique", **DATES), repeat)
    store = FunnelStore(catalog)
    saved = store.by_name(PROJECT, "bench") or store.create(
        PROJECT,
        name="bench",
        steps=tuple(FunnelStep(e) for e in ("Viewed Page", "Added To Cart", "Purchase")),
        length=7,
        length_unit=LengthUnit.DAY,
        counting=Counting.UNIQUES,
    )

    def funnel() -> Any:
        params = {"funnel_id": str(saved.id), "interval": "30", **DATES}
        return funnels.funnels(QueryContext(caller, params, engine, catalog))

    funnel_p50 = timed(funnel, repeat)
    return f"segmentation on plan p50 {general}, unique p50 {unique}, 3-step funnel p50 {funnel_p50}"


def checkpoint_need(engine: DuckDBEngine, data_dir: Path) -> str:
    """Peak growth of the database file while a full WAL is checkpointed, sampled every millisecond."""
    engine.submit(WriteBatch(events=events(10**8, 60_000))).result()
    wal = data_dir / "events.duckdb.wal"
    wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    db = data_dir / "events.duckdb"
    before = db.stat().st_size
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, db.stat().st_size)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    engine.reader().execute("CHECKPOINT")
    done.set()
    sampler.join()
    grown = (max(peak, db.stat().st_size) - before) / 2**20
    return f"checkpoint of a {wal_mb:.1f} MB WAL grew the database file by {grown:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=50, help="events per request during sustained ingestion")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()
    print(machine(), "(shared with other work: figures vary)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        catalog = Catalog(data_dir)
        catalog.create_project(project_id=PROJECT, name="bench", token="T", secret="S", api_key="K")
        # The reference: the same events, loaded in large batches into a store of their own.
        reference_dir = Path(tmp) / "reference"
        reference_catalog = Catalog(reference_dir)
        reference_catalog.create_project(project_id=PROJECT, name="bench", token="T", secret="S", api_key="K")
        reference = DuckDBEngine(reference_dir, memory_limit=args.memory_limit)
        ingest(reference, args.events, 20_000, 1)
        reference.reader().execute("CHECKPOINT")
        print(f"reference, {args.events:,} events in 20k batches: {queries(reference, reference_catalog, args.repeat)}")
        print(f"    {shape(reference, reference_dir)}")
        reference.close()

        engine = DuckDBEngine(data_dir, memory_limit=args.memory_limit)
        rate = ingest(engine, args.events, args.batch, args.writers)
        print(f"{args.events:,} events in {args.batch}-event requests at {rate:,.0f} events/s")
        print(f"  idle right after:        {queries(engine, catalog, args.repeat)}")
        print(f"    {shape(engine, data_dir)}")
        time.sleep(3)
        print(f"  idle 3 s later:          {queries(engine, catalog, args.repeat)}")
        print(f"    {shape(engine, data_dir)}")
        print(f"  {checkpoint_need(engine, data_dir)}")
        engine.close()
        engine = DuckDBEngine(data_dir, memory_limit=args.memory_limit)
        print(f"  after a restart:         {queries(engine, catalog, args.repeat)}")
        print(f"    {shape(engine, data_dir)}")
        engine.close()


if __name__ == "__main__":
    main()
