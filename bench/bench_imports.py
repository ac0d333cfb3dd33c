"""Warehouse import rate: rows per second from a PostgreSQL table into a real server, through the warehouse
import API (an event-stream import, time_based), from the run's start to its end as its history reports them
and as the client sees them (create to SUCCEEDED).

A throwaway PostgreSQL cluster (tests/postgres.py) holds `--rows` rows of eight columns (an event name,
user id, time, insert time, a number, two strings and a JSON column); the server reads them through ADBC in
batches of `warehouse_batch_rows`. Then a second run with nothing new shows the cost of the scan alone.

    .venv/bin/python -m bench.bench_imports                 # 500,000 rows
    .venv/bin/python -m bench.bench_imports --rows 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine
from tests.postgres import DATABASE, PASSWORD, USER, PostgresCluster
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
BASE = f"/api/app/projects/{PROJECT_ID}/warehouse-sources"


def _wait(server: ServerProcess, import_id: int, runs: int) -> dict[str, Any]:
    while True:
        found = httpx.get(f"{server.url}{BASE}/imports/{import_id}/history", auth=AUTH).json()["results"]["runs"]
        if len(found) >= runs and all(r["status"] != "RUNNING" for r in found):
            return dict(found[0])
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    print(f"machine: {machine()} (shared with other work: figures vary)")
    with PostgresCluster() as pg, tempfile.TemporaryDirectory() as tmp:
        pg.execute(
            """CREATE TABLE events (name text, user_id text, at timestamptz, inserted_at timestamptz,
                                    amount double precision, plan text, country text, extra jsonb)""",
            f"""INSERT INTO events SELECT (ARRAY['Viewed Page','Purchase','Signed Up'])[1 + g % 3], 'user-' || (g % 50000),
                       timestamptz '2024-01-01 00:00:00+00' + (g % 2592000) * interval '1 second',
                       timestamptz '2024-02-01 00:00:00+00' + (g / 1000) * interval '1 second', g * 0.25,
                       (ARRAY['free','pro','team'])[1 + g % 3], (ARRAY['FR','US','DE','JP'])[1 + g % 4],
                       jsonb_build_object('campaign', 'c' || (g % 97))
                FROM generate_series(1, {args.rows}) g""",
        )
        data_dir = Path(tmp) / "data"
        seed_catalog(data_dir)
        server = ServerProcess(data_dir, env={"MIXHOUSE_WAREHOUSE_MANUAL_SYNCS_PER_HOUR": "0"}).start()
        try:
            source = {"type": "postgres", "host": "127.0.0.1", "port": pg.port, "database": DATABASE, "user": USER}
            source_id = httpx.post(f"{server.url}{BASE}", json={**source, "password": PASSWORD}, auth=AUTH).json()[
                "results"
            ]["id"]
            body = {
                "import_type": "event_stream",
                "warehouse_source_id": source_id,
                "table_params": {"table_name": "events"},
                "event_column_name": "name",
                "time_column_name": "at",
                "user_column_name": "user_id",
                "insert_time_column_name": "inserted_at",
                "json_properties_column_name": "extra",
                "sync_mode": "time_based",
            }
            started = time.perf_counter()
            response = httpx.post(f"{server.url}{BASE}/imports/event-stream", json=body, auth=AUTH, timeout=60)
            import_id = response.json()["results"]["id"]
            run = _wait(server, import_id, 1)
            wall = time.perf_counter() - started
            assert run["status"] == "SUCCEEDED" and run["num_events_imported"] == args.rows, run
            ran = max(1, run["end_time"] - run["start_time"])
            print(f"rows: {args.rows:,}")
            print(f"first run (all rows): {wall:.2f} s as the client saw it -> {args.rows / wall:,.0f} rows/s")
            print(f"  (history: {ran} s, whole seconds)")
            started = time.perf_counter()
            httpx.put(f"{server.url}{BASE}/imports/{import_id}/manual-sync", json={}, auth=AUTH)
            again = _wait(server, import_id, 2)
            print(
                f"second run (nothing new, rows at the cursor re-read and skipped): {time.perf_counter() - started:.2f} s, "
                f"{again['num_events_imported']} imported"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
