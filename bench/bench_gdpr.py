"""GDPR deletion: the time to delete 1,000 users (every id of their identity clusters) from a large store
through the GDPR API, and query latency before and after.

The store is generated in bulk with SQL straight into a data dir (the engine's schema, no HTTP), like
bench_identity: users u0..uN, 30% of them merged with 1-5 devices whose events carry `$device:` ids, one
profile per user. A real server then answers segmentation (uniques), a saved funnel and retention over
the whole month (median of runs), a GDPR deletion of 1,000 users (every third one merged, named by one
device id) is timed from the POST to SUCCESS, and the queries run again.

    .venv/bin/python -m bench.bench_gdpr                     # 10M events
    .venv/bin/python -m bench.bench_gdpr --events 1000000    # smaller
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx

from bench.common import machine
from mixhouse.catalog import Catalog
from mixhouse.engine.duckdb.engine import DuckDBEngine
from mixhouse.gdpr.tokens import GdprTokens
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, seed_catalog

T0_MS = 1_704_067_200_000  # 2024-01-01
DATES = {"from_date": "2024-01-01", "to_date": "2024-01-30"}


def generate(data_dir: Path, events: int, users: int) -> None:
    seed_catalog(data_dir)
    DuckDBEngine(data_dir).close()  # creates the schema
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    conn.execute(
        """INSERT INTO identity_map (project_id, distinct_id, canonical_id, distinct_key, canonical_key)
           SELECT $p, did, cid, CAST(md5_number(did) >> 64 AS UBIGINT), CAST(md5_number(cid) >> 64 AS UBIGINT)
           FROM (SELECT '$device:d' || u || '-' || k AS did, 'u' || u AS cid
                 FROM range($users) t(u), LATERAL (SELECT * FROM range(1 + u % 5)) d(k) WHERE u % 10 < 3)""",
        {"users": users, "p": PROJECT_ID},
    )
    conn.execute(
        """INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties, user_key)
           SELECT $p, i + 1, $t0 + i * 37 % 2592000000, ['Viewed Page', 'Signed Up', 'Purchase'][1 + i % 3],
                  did, 'ins-' || i, '{"plan":"' || ['free','pro','team'][1 + i % 3] || '"}',
                  CAST(md5_number(did) >> 64 AS UBIGINT)
           FROM (SELECT i, CASE WHEN u % 10 < 3 AND i % 2 = 0 THEN '$device:d' || u || '-' || (i // 2) % (1 + u % 5)
                                ELSE 'u' || u END AS did
                 FROM (SELECT i, (i * 7919::BIGINT) % $users AS u FROM range($events) t(i)))""",
        {"events": events, "users": users, "t0": T0_MS, "p": PROJECT_ID},
    )
    conn.execute(
        """INSERT INTO profiles SELECT $p, 'u' || u, '{"$email":"u' || u || '@example.com"}', $t0
           FROM range($users) t(u)""",
        {"users": users, "t0": T0_MS, "p": PROJECT_ID},
    )
    conn.execute("CHECKPOINT")
    conn.close()


def _get(server: ServerProcess, name: str, **params: str) -> Any:
    r = httpx.get(
        f"{server.url}/api/query/{name}",
        params={"project_id": str(PROJECT_ID), **params},
        auth=(SA_USER, SA_SECRET),
        timeout=600,
    )
    assert r.status_code == 200, r.text
    return r.json()


def latencies(server: ServerProcess, funnel_id: int, runs: int) -> dict[str, tuple[float, float, Any]]:
    queries: dict[str, Callable[[], Any]] = {
        "segmentation uniques": lambda: _get(server, "segmentation", event="Purchase", type="unique", **DATES)["data"],
        "funnel (saved, 2 steps)": lambda: _get(server, "funnels", funnel_id=str(funnel_id), **DATES)["meta"],
        "retention": lambda: _get(server, "retention", born_event="Signed Up", event="Purchase", **DATES),
        "engage count": lambda: _get(server, "engage")["total"],
    }
    out = {}
    for name, run in queries.items():
        run()  # warm
        times, value = [], None
        for _ in range(runs):
            start = time.perf_counter()
            value = run()
            times.append(time.perf_counter() - start)
        out[name] = (statistics.median(times), min(times), value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=None, help="default: events / 20")
    parser.add_argument("--delete", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    users = args.users or max(args.events // 20, 1)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        start = time.perf_counter()
        generate(data_dir, args.events, users)
        print(f"generated {args.events:,} events, {users:,} users in {time.perf_counter() - start:.1f} s")
        token, _ = GdprTokens(Catalog(data_dir)).create(PROJECT_ID, "bench")
        server = ServerProcess(data_dir).start()
        try:
            body = {
                "name": "f",
                "steps": [{"event": "Signed Up"}, {"event": "Purchase"}],
                "length": 7,
                "length_unit": "day",
            }
            r = httpx.post(f"{server.url}/api/app/projects/{PROJECT_ID}/funnels", json=body, auth=(SA_USER, SA_SECRET))
            funnel_id = int(r.json()["results"]["funnel_id"])
            before = latencies(server, funnel_id, args.runs)
            # Every third user is a merged one (u % 10 < 3), named by its first device id.
            picked = [u * 10 // 3 for u in range(args.delete)]
            ids = [f"$device:d{u}-0" if u % 10 < 3 else f"u{u}" for u in picked]
            start = time.perf_counter()
            created = httpx.post(
                f"{server.url}/api/app/data-deletions/v3.0?token={TOKEN}",
                json={"distinct_ids": ids},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            task = created.json()["results"]["task_id"]
            while True:
                status = httpx.get(
                    f"{server.url}/api/app/data-deletions/v3.0/{task}?token={TOKEN}",
                    headers={"Authorization": f"Bearer {token}"},
                ).json()["results"]["status"]
                if status in ("SUCCESS", "FAILURE"):
                    break
                time.sleep(0.02)
            seconds = time.perf_counter() - start
            assert status == "SUCCESS", status
            # The server folds the WAL into the file once writes pause (MIXHOUSE_IDLE_CHECKPOINT_SECONDS):
            # measure after it, as queries will run almost always.
            wal = data_dir / "events.duckdb.wal"
            deadline = time.monotonic() + 120
            while wal.exists() and wal.stat().st_size > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            after = latencies(server, funnel_id, args.runs)
        finally:
            server.stop()
        engine = DuckDBEngine(data_dir)
        left = engine.reader().execute("SELECT count(*) FROM events").fetchall()[0][0]
        engine.close()
        print(
            f"deleted {args.delete:,} users ({args.events - int(left):,} events) via the GDPR API: "
            f"{seconds:.2f} s from POST to SUCCESS"
        )
        print(f"{'query (median / min ms)':<26}{'before':>17}{'after':>17}")
        for name in before:
            b, a = before[name], after[name]
            print(f"{name:<26}{b[0] * 1000:10.1f} /{b[1] * 1000:6.0f}{a[0] * 1000:10.1f} /{a[1] * 1000:6.0f}")
        assert after["engage count"][2] == users - args.delete


if __name__ == "__main__":
    main()
