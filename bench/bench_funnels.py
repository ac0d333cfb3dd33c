"""Funnels and retention over many events, next to ClickHouse's `windowFunnel` in chDB on the same data.

    .venv/bin/pip install -e '.[bench]'          # chDB, for the peer baseline only
    .venv/bin/python -m bench.bench_funnels [--events 10000000] [--users 1000000] [--runs 7]

Events are written in bulk straight into a fresh data dir's DuckDB file (no HTTP), in time order as
ingestion would write them, each with an `$insert_id` (so the dedup step is paid as in production);
then a real server is started on it and every figure is the median latency of an HTTP request.
chDB gets the same rows (user, time, event) in a MergeTree ordered by (user, time) and answers the
plain funnel with `windowFunnel` over the whole range, its calls alternating with ours; its numbers are
the peer baseline, not a like-for-like Mixpanel funnel (no grace period, no per-step times, no per-day
entries).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx

from bench.common import machine, median
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.engine.duckdb.schema import user_key_sql
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
START_MS = 1_704_067_200_000  # 2024-01-01 UTC
DAYS = 30
WINDOW_MS = 7 * 86_400_000
FROM, TO = "2024-01-01", "2024-01-14"
TO_END_MS = START_MS + 14 * 86_400_000


def write_events(data_dir: Path, events: int, users: int, merged: int = 0, duplicates: float = 0.0) -> None:
    """`merged`: that many ids made aliases of others (identity_map rows, as merges leave them);
    `duplicates`: the share of events hidden as superseded copies (superseded_events rows). Both make
    every analysis pay for the identity join and the dedup anti-join."""
    DuckDBEngine(data_dir).close()  # the schema
    db = duckdb.connect(str(data_dir / "events.duckdb"))
    # Keys as the writer stores them (a data dir without them would be filled once at start instead).
    db.execute(
        f"""
        INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties, user_key)
        SELECT *, {user_key_sql("distinct_id")} FROM (
            SELECT $project AS project_id, i AS seq,
                   $start + CAST(hash(i * 7) % ($days * CAST(86400000 AS BIGINT)) AS BIGINT) AS time_ms,
                   'e' || CAST(hash(i * 13) % 8 AS VARCHAR) AS event,
                   'u' || CAST(hash(i * 3) % $users AS VARCHAR) AS distinct_id, 'x' || CAST(i AS VARCHAR) AS insert_id,
                   CAST('{{"plan": "' || CAST(hash(i * 5) % 3 AS VARCHAR) || '"}}' AS JSON) AS properties
            FROM range($events) r(i) ORDER BY time_ms
        )
        """,
        {"project": PROJECT_ID, "start": START_MS, "days": DAYS, "users": users, "events": events},
    )
    db.execute(
        f"""INSERT INTO identity_map
            SELECT *, {user_key_sql("distinct_id")}, {user_key_sql("canonical_id")} FROM (
                SELECT $project AS project_id, 'u' || CAST(i AS VARCHAR) AS distinct_id,
                       'u' || CAST(i + $merged AS VARCHAR) AS canonical_id
                FROM range($merged) r(i))""",
        {"project": PROJECT_ID, "merged": merged},
    )
    db.execute(
        "INSERT INTO superseded_events SELECT $project, i FROM range($events) r(i) WHERE hash(i * 17) % 10000 < $share",
        {"project": PROJECT_ID, "events": events, "share": int(duplicates * 10_000)},
    )
    db.execute(
        "COPY (SELECT distinct_id AS u, time_ms AS t, event AS e FROM events) TO $path (FORMAT parquet)",
        {"path": str(data_dir.parent / "events.parquet")},
    )
    db.close()


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    """Median of `runs` timed calls after one untimed call (caches, and any start-up work, settle)."""
    fn()
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return median(times), result


# One client for every request (keep-alive), as an API client would: a new httpx client per request costs
# ~20 ms of its own (SSL context), which chDB's in-process calls do not pay.
CLIENT = httpx.Client(timeout=3600)


def get(url: str, path: str, **params: Any) -> Any:
    r = CLIENT.get(f"{url}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def save_funnel(url: str, steps: int, counting: str = "uniques") -> int:
    body = {
        "name": f"{steps} steps, {counting}",
        "steps": [f"e{i}" for i in range(steps)],
        "length": 7,
        "length_unit": "day",
        "counting": counting,
    }
    r = httpx.post(f"{url}/api/app/projects/{PROJECT_ID}/funnels", json=body, auth=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return int(r.json()["results"]["funnel_id"])


def chdb_funnel(sess: Any, steps: int) -> list[int]:
    # Step 1 only inside the range, as our entries; later steps may follow up to the window after to_date.
    conds = ", ".join([f"e = 'e0' AND t < {TO_END_MS}"] + [f"e = 'e{i}'" for i in range(1, steps)])
    names = ", ".join(f"'e{i}'" for i in range(steps))
    sql = f"""
        SELECT level, count() FROM (
            SELECT u, windowFunnel({WINDOW_MS})(toUInt64(t), {conds}) AS level FROM events
            WHERE t >= {START_MS} AND t < {TO_END_MS + WINDOW_MS} AND e IN ({names}) GROUP BY u
        ) GROUP BY level ORDER BY level
    """
    rows = [line.split(",") for line in str(sess.query(sql, "CSV")).strip().splitlines()]
    reached = {int(level): int(n) for level, n in rows}
    return [sum(n for level, n in reached.items() if level >= k) for k in range(1, steps + 1)]


def chdb_session(tmp: Path) -> Any:
    import chdb.session as chs  # optional: only the benchmark needs it

    session_class: Any = chs.Session  # chDB ships no type hints
    sess = session_class(str(tmp / "chdb"))
    sess.query("CREATE DATABASE IF NOT EXISTS b ENGINE = Atomic")
    sess.query("USE b")
    sess.query("CREATE TABLE events (u String, t Int64, e LowCardinality(String)) ENGINE = MergeTree ORDER BY (u, t)")
    sess.query(f"INSERT INTO events SELECT u, t, e FROM file('{tmp / 'events.parquet'}', Parquet)")
    return sess


def alternating(ours: Any, theirs: Any, runs: int) -> tuple[float, Any, float, Any]:
    """Medians of both, called in turn (after one untimed call each), so that the machine's noise
    falls on both alike."""
    ours(), theirs()
    mine: list[float] = []
    peer: list[float] = []
    a = b = None
    for _ in range(runs):
        t0 = time.perf_counter()
        a = ours()
        mine.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = theirs()
        peer.append(time.perf_counter() - t0)
    return median(mine), a, median(peer), b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--timezone", default="UTC", help="the project's timezone (chDB ignores it)")
    parser.add_argument("--merged", type=int, default=0, help="ids made aliases of others (identity join)")
    parser.add_argument("--duplicates", type=float, default=0.0, help="share of events hidden as duplicates")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"data: {args.events:,} events, {args.users:,} users, {DAYS} days, 8 event names; funnels {FROM}..{TO};"
        f" project timezone {args.timezone}; {args.merged:,} merged ids, {args.duplicates:.0%} duplicates"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        seed_catalog(data_dir, timezone=args.timezone)
        t0 = time.perf_counter()
        write_events(data_dir, args.events, args.users, args.merged, args.duplicates)
        print(f"bulk write: {time.perf_counter() - t0:.1f} s")
        sess = chdb_session(Path(tmp))
        server = ServerProcess(data_dir).start()
        try:
            whole = {"from_date": FROM, "to_date": TO, "interval": 14}
            daily = {"from_date": FROM, "to_date": TO}
            rows: list[tuple[str, float, list[int] | None]] = []
            for steps in (3, 5):
                fid = save_funnel(server.url, steps)
                t_whole, body, t_ch, ch_counts = alternating(
                    lambda fid=fid: get(server.url, "funnels", funnel_id=fid, **whole),
                    lambda steps=steps: chdb_funnel(sess, steps),
                    args.runs,
                )
                t_daily, _ = timed(lambda fid=fid: get(server.url, "funnels", funnel_id=fid, **daily), args.runs)
                counts = [s["count"] for s in body["data"][FROM]["steps"]]
                rows.append((f"{steps}-step funnel, one bucket", t_whole, counts))
                rows.append((f"{steps}-step windowFunnel in chDB, in turn with it", t_ch, ch_counts))
                rows.append((f"{steps}-step funnel, 14 daily buckets", t_daily, None))
                if steps == 3:
                    on = {**whole, "on": 'properties["plan"]'}
                    t_on, _ = timed(lambda fid=fid, on=on: get(server.url, "funnels", funnel_id=fid, **on), args.runs)
                    rows.append(("3-step funnel, one bucket, on plan", t_on, None))
                    tid = save_funnel(server.url, steps, "totals")
                    t_tot, _ = timed(lambda tid=tid: get(server.url, "funnels", funnel_id=tid, **whole), args.runs)
                    rows.append(("3-step funnel, one bucket, totals", t_tot, None))
            ret = {"from_date": FROM, "to_date": "2024-01-10", "born_event": "e0", "event": "e1", "interval_count": 10}
            t_ret, _ = timed(lambda: get(server.url, "retention", **ret), args.runs)
            rows.append(("retention, 10 daily cohorts x 11 day intervals", t_ret, None))
            anyret = {k: v for k, v in ret.items() if k != "event"}
            t_any, _ = timed(lambda: get(server.url, "retention", **anyret), args.runs)
            rows.append(("retention, any event as the return", t_any, None))
        finally:
            server.stop()
            sess.close()
    print(f"{'query':<52} {'median':>9}  step counts")
    for label, seconds, step_counts in rows:
        print(f"{label:<52} {seconds * 1000:>7.0f} ms  {step_counts if step_counts else ''}")


if __name__ == "__main__":
    main()
