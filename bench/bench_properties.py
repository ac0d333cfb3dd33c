"""Property reads over HTTP next to hand-written queries over typed columns, on the same events.

    .venv/bin/python -m bench.bench_properties                                   # 2M events
    .venv/bin/python -m bench.bench_properties --events 10000000 --users 1000000 --keep /work/benchkeep
    .venv/bin/python -m bench.bench_properties --baseline /path/to/other/checkout  # + that revision's server

Events are written in bulk straight into a fresh data dir (no HTTP) with the old layout (JSON only), as
a store written before the property columns existed; the server's start then upgrades it
(property_columns.migrate, timed here). Properties: plan and $browser (strings), amount (a number), tags
(a list, on a third of the events), $current_url and mp_lib. Every mixhouse figure is the median latency
of an HTTP request; "typed" is DuckDB answering the same question by hand over a table with one typed
column per property (plan VARCHAR, amount DOUBLE, tags VARCHAR[]) holding the same rows, run in this
process: the floor that a layout of typed columns reaches. "chdb" is the same request to a second server
running the ClickHouse engine in process (`--engine chdb`) on the same rows, copied into it with
`mixhouse migrate` (kept with `--keep` too; `--no-chdb` leaves it out). `--baseline` also serves the data
dir from another checkout (e.g. main, before the property columns), its requests alternating with ours.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx

from bench.common import cpu_seconds, machine, median
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.engine.duckdb.schema import user_key_sql
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
START_MS = 1_704_067_200_000  # 2024-01-01 UTC
DAYS = 30
FROM, TO = "2024-01-01", "2024-01-30"
END_MS = START_MS + DAYS * 86_400_000
CLIENT = httpx.Client(timeout=3600)


def write_events(data_dir: Path, events: int, users: int) -> None:
    """The old layout: the events table without the slot columns' contents (a store written before them)."""
    seed_catalog(data_dir)
    DuckDBEngine(data_dir).close()  # the schema
    db = duckdb.connect(str(data_dir / "events.duckdb"))
    db.execute(
        f"""
        INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties, user_key)
        SELECT *, {user_key_sql("distinct_id")} FROM (
            SELECT $project AS project_id, i AS seq,
                   $start + CAST(hash(i * 7) % ($days * CAST(86400000 AS BIGINT)) AS BIGINT) AS time_ms,
                   ['Viewed Page', 'Signed Up', 'Purchase', 'Added To Cart'][1 + i % 4] AS event,
                   'user-' || CAST(hash(i * 31) % $users AS VARCHAR) AS distinct_id,
                   'ins-' || CAST(i AS VARCHAR) AS insert_id,
                   json_object('plan', ['free', 'pro', 'team'][1 + i % 3],
                               '$browser', ['Chrome', 'Firefox', 'Safari', 'Edge'][1 + i % 4],
                               'amount', (i % 1000) + 0.5,
                               'tags', CASE WHEN i % 3 = 0 THEN json_array('a', 'b') END,
                               '$current_url', 'https://example.com/page/' || (i % 50),
                               'mp_lib', 'web') AS properties
            FROM range($events) r(i) ORDER BY time_ms
        )
        """,
        {"project": PROJECT_ID, "start": START_MS, "days": DAYS, "users": users, "events": events},
    )
    # Rows written without the layout: forget the slots handed out for the (empty) project at open.
    db.execute("DELETE FROM property_slots; DELETE FROM property_layout")
    # Nor the property counts: stamped as the version before them (a baseline checkout of then opens it).
    db.execute("DROP TABLE property_counts; DROP TABLE property_counts_recent; DROP TABLE property_counts_through")
    db.execute("UPDATE engine_meta SET value = '2' WHERE key = 'schema_version'")
    db.execute("CHECKPOINT")
    db.close()


def typed_copy(data_dir: Path, path: Path) -> duckdb.DuckDBPyConnection:
    """The same rows with one typed column per property, sorted by time as the events table is."""
    db = duckdb.connect(str(path))
    db.execute(f"ATTACH '{data_dir / 'events.duckdb'}' AS src (READ_ONLY)")
    db.execute(
        """CREATE TABLE typed AS SELECT time_ms, event, user_key,
                  properties ->> 'plan' AS plan, CAST(properties ->> 'amount' AS DOUBLE) AS amount,
                  CAST(properties -> 'tags' AS VARCHAR[]) AS tags
           FROM src.events ORDER BY time_ms"""
    )
    db.execute("DETACH src")
    db.execute("CHECKPOINT")
    return db


def chdb_copy(data_dir: Path, target: Path) -> None:
    """The events of `data_dir` in a data dir of the ClickHouse engine (chDB), with the same catalog."""
    subprocess.run(
        [sys.executable, "-m", "mixhouse", "migrate", "--from", str(data_dir), "--to-engine", "chdb"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    target.mkdir(parents=True, mode=0o700)
    shutil.move(data_dir / "clickhouse", target / "clickhouse")
    (data_dir / "migrate-chdb.json").unlink()
    shutil.copy(data_dir / "catalog.sqlite3", target / "catalog.sqlite3")


def get(url: str, path: str, **params: Any) -> Any:
    r = CLIENT.get(f"{url}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def export_rows(url: str, where: str) -> int:
    r = CLIENT.get(
        f"{url}/api/2.0/export",
        params={"project_id": PROJECT_ID, "from_date": FROM, "to_date": TO, "where": where},
        auth=AUTH,
    )
    assert r.status_code == 200, r.text
    return r.content.count(b"\n")


def timed(fns: list[Callable[[], Any]], runs: int) -> list[tuple[float, Any]]:
    """Median of `runs` timed calls of each, after one untimed call; the calls alternate, each round
    in another order, so that the shared machine's noise falls on all alike."""
    results = [fn() for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for r in range(runs):
        order = list(range(len(fns)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            t0 = time.perf_counter()
            results[i] = fns[i]()
            times[i].append(time.perf_counter() - t0)
    return [(median(t), result) for t, result in zip(times, results, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="a folder to keep the written (old-layout) events in between runs")
    parser.add_argument("--baseline", type=Path, help="another checkout whose server answers the same requests")
    parser.add_argument("--no-chdb", action="store_true", help="leave out the server on the ClickHouse engine (chDB)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"data: {args.events:,} events, {args.users:,} users, {DAYS} days")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        data_dir = base / "data"
        kept = args.keep / f"properties-{args.events}-{args.users}" if args.keep else None
        t0 = time.perf_counter()
        if kept is not None and (kept / "data").exists():
            shutil.copytree(kept / "data", data_dir)
        else:
            write_events(data_dir, args.events, args.users)
            if kept is not None:
                shutil.copytree(data_dir, kept / "data")
        print(f"written (old layout) in {time.perf_counter() - t0:.1f} s")
        chdb = None
        if not args.no_chdb:
            t0 = time.perf_counter()
            chdb = ServerProcess(base / "chdb" / "data", env={"MIXHOUSE_ENGINE": "chdb"})
            if kept is not None and (kept / "chdb").exists():
                shutil.copytree(kept / "chdb", chdb.data_dir, symlinks=True)  # chDB links its tables
            else:
                chdb_copy(data_dir, chdb.data_dir)
                if kept is not None:
                    shutil.copytree(chdb.data_dir, kept / "chdb", symlinks=True)
            print(f"chDB copy (mixhouse migrate) in {time.perf_counter() - t0:.1f} s")
            chdb.start(timeout=600)
        baseline = None
        if args.baseline is not None:
            # The old revision reads the data dir first, before it is upgraded (it ignores columns it lacks).
            baseline = ServerProcess(base / "theirs" / "data", source_dir=args.baseline)
            shutil.copytree(data_dir, baseline.data_dir)
            baseline.start(timeout=600)
        t0 = time.perf_counter()
        DuckDBEngine(data_dir).close()  # the upgrade the server would run at start
        print(f"upgrade (slot columns filled, property counts built) in {time.perf_counter() - t0:.1f} s")
        typed = typed_copy(data_dir, base / "typed.duckdb")
        server = ServerProcess(data_dir).start(timeout=600)
        try:
            assert server.proc is not None
            run_all(
                server.url,
                chdb.url if chdb else None,
                baseline.url if baseline else None,
                typed,
                args.runs,
                server.proc.pid,
            )
        finally:
            server.stop()
            if chdb is not None:
                chdb.stop()
            if baseline is not None:
                baseline.stop()
            typed.close()


def run_all(
    url: str, chdb: str | None, baseline: str | None, typed: duckdb.DuckDBPyConnection, runs: int, pid: int
) -> None:
    day = "CAST(to_timestamp(time_ms / 1000) AS DATE)"
    span = f"time_ms >= {START_MS} AND time_ms < {END_MS}"
    seg = {"event": "Purchase", "from_date": FROM, "to_date": TO, "unit": "day"}
    cases: list[tuple[str, Callable[[str], Any], str]] = [
        (
            "segmentation, no `on`",
            lambda u: get(u, "segmentation", **seg),
            f"SELECT {day}, count(*) FROM typed WHERE {span} AND event = 'Purchase' GROUP BY 1",
        ),
        (
            "segmentation `on` a string",
            lambda u: get(u, "segmentation", **seg, on='properties["plan"]'),
            f"SELECT plan, {day}, count(*) FROM typed WHERE {span} AND event = 'Purchase' GROUP BY 1, 2",
        ),
        (
            "segmentation `on` a string, type=unique",
            lambda u: get(u, "segmentation", **seg, on='properties["plan"]', type="unique"),
            f"SELECT plan, {day}, count(DISTINCT user_key) FROM typed WHERE {span} AND event = 'Purchase' GROUP BY 1, 2",
        ),
        (
            "segmentation `on` a list, numeric `where`",
            lambda u: get(u, "segmentation", **seg, on='properties["tags"]', where='properties["amount"] > 500'),
            f"""SELECT t, d, count(*) FROM (SELECT unnest(list_distinct(tags)) AS t, {day} AS d FROM typed
                WHERE {span} AND event = 'Purchase' AND amount > 500) GROUP BY 1, 2""",
        ),
        (
            "/segmentation/numeric",
            lambda u: get(u, "segmentation/numeric", **seg, on='properties["amount"]', buckets=10),
            f"""SELECT least(floor((amount - 0.5) / 100), 9) AS b, {day}, count(*) FROM typed
                WHERE {span} AND event = 'Purchase' AND amount IS NOT NULL GROUP BY 1, 2""",
        ),
        (
            "/events/properties/top, one event",
            lambda u: get(u, "events/properties/top", event="Purchase", from_date=FROM, to_date=TO),
            f"""SELECT count(plan), count(amount), count(tags) FROM typed WHERE {span} AND event = 'Purchase'""",
        ),
        (
            "/events/properties/top, all events",
            lambda u: get(u, "events/properties/top", from_date=FROM, to_date=TO),
            f"SELECT count(plan), count(amount), count(tags) FROM typed WHERE {span}",
        ),
    ]
    # cpu: the server's CPU time per request (the machine is shared: wall times carry others' load).
    header = f"{'query':44s} {'mixhouse':>10s} {'cpu':>9s} {'typed':>9s} {'ratio':>6s}"
    header += f" {'chdb':>9s}" if chdb else ""
    print(header + (f" {'baseline':>10s} {'speed-up':>8s}" if baseline else ""))
    for label, request, sql in cases:
        fns = [lambda request=request: request(url), lambda sql=sql: typed.execute(sql).fetchall()]
        others = [u for u in (chdb, baseline) if u]
        fns += [lambda request=request, u=u: request(u) for u in others]
        cpu0 = cpu_seconds(pid)
        figures = timed(fns, runs)
        cpu = (cpu_seconds(pid) - cpu0) / (runs + 1)  # `timed` calls each once more, untimed
        (ours, answer), (floor, _) = figures[0], figures[1]
        line = f"{label:44s} {ours * 1000:8.0f} ms {cpu * 1000:6.0f} ms {floor * 1000:6.0f} ms {ours / floor:5.1f}x"
        rest = figures[2:]
        if chdb:
            (theirs, other), *rest = rest
            line += f" {theirs * 1000:6.0f} ms" + ("" if other == answer else " (answer differs!)")
        if baseline:
            theirs, old = rest[0]
            assert old == answer, f"{label}: the two revisions disagree"
            line += f" {theirs * 1000:7.0f} ms {theirs / ours:7.1f}x"
        print(line, flush=True)
    where = 'properties["amount"] > 900'
    urls = [u for u in (url, chdb, baseline) if u]
    figures = timed([lambda u=u: export_rows(u, where) for u in urls], runs)
    ours, rows = figures[0]
    line = f"{'export, numeric `where` (rows/s)':44s} {rows / ours:10,.0f} {'':9s} {'':9s} {'':6s}"
    rest = figures[1:]
    if chdb:
        (theirs, other_rows), *rest = rest
        line += f" {other_rows / theirs:9,.0f}" + ("" if other_rows == rows else " (rows differ!)")
    if baseline:
        theirs, old_rows = rest[0]
        assert old_rows == rows
        line += f" {old_rows / theirs:10,.0f} {theirs / ours:7.1f}x"
    print(line + f"   ({rows:,} of the events match; {ours * 1000:.0f} ms)", flush=True)


if __name__ == "__main__":
    main()
