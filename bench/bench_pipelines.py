"""Data pipelines: the export rate (events/s) of a raw pipeline to a real S3-compatible server on loopback
(moto's server mode), and of a schematized (Parquet, monoschema) one to a local folder.

One day of events is generated in bulk with SQL straight into a data dir (the engine's schema, no HTTP),
like bench_gdpr. A real server, given the S3 credentials in its environment, then runs a pipeline for that
day; the time is taken from `create` to the unit's `complete` file.

    .venv/bin/python -m bench.bench_pipelines                     # 1M events
    .venv/bin/python -m bench.bench_pipelines --events 200000     # smaller
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx

from bench.common import machine
from mixhouse.engine.duckdb.engine import DuckDBEngine
from tests.s3server import KEY, SECRET, S3Server
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

DAY = "2024-01-01"
T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
BUCKET = "bench"


def generate(data_dir: Path, events: int) -> None:
    seed_catalog(data_dir)
    DuckDBEngine(data_dir).close()  # creates the schema
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    conn.execute(
        """INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties, user_key)
           SELECT $p, i + 1, $t0 + (i * 86399999 // $events), ['Viewed Page', 'Signed Up', 'Purchase'][1 + i % 3],
                  'u' || (i % 50000), 'ins-' || i,
                  '{"$insert_id":"ins-' || i || '","plan":"' || ['free','pro','team'][1 + i % 3]
                      || '","$browser":"Chrome","amount":' || (i % 1000) || '}',
                  CAST(md5_number('u' || (i % 50000)) >> 64 AS UBIGINT)
           FROM range($events) t(i)""",
        {"events": events, "t0": T0_MS, "p": PROJECT_ID},
    )
    conn.close()


def run(server: ServerProcess, params: dict[str, str], done: Callable[[], bool]) -> float:
    start = time.perf_counter()
    r = httpx.post(
        f"{server.url}/api/2.0/nessie/pipeline/create",
        data={"project_id": str(PROJECT_ID), "from_date": DAY, "to_date": DAY, **params},
        auth=(SA_USER, SA_SECRET),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    while not done():
        time.sleep(0.05)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file-rows", type=int, default=100_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        started = time.perf_counter()
        generate(data_dir, args.events)
        print(f"generated {args.events:,} events of {DAY} in {time.perf_counter() - started:.1f} s")
        s3 = S3Server(root / "moto.log").start()
        s3.client().create_bucket(Bucket=BUCKET)
        env = {
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "MIXHOUSE_PIPELINE_TICK_SECONDS": "0.2",
            "MIXHOUSE_PIPELINE_MAX_BACKFILL_DAYS": "100000",
            "MIXHOUSE_PIPELINE_FILE_ROWS": str(args.file_rows),
            "MIXHOUSE_PIPELINE_LOCAL_DIR": str(root / "lake"),
        }
        server = ServerProcess(data_dir, env=env).start()
        try:
            folder = f"raw/{PROJECT_ID}/2024/01/01/full_day"
            raw = {"type": "s3-raw", "s3_bucket": BUCKET, "s3_prefix": "raw", "s3_endpoint_url": s3.url}
            seconds = run(server, raw, lambda: f"{folder}/complete" in s3.keys(BUCKET, folder))
            parts = len(s3.keys(BUCKET, folder)) - 1
            print(
                f"raw JSON-lines gzip to S3 (moto, loopback): {args.events:,} events, {parts} files in "
                f"{seconds:.1f} s = {args.events / seconds:,.0f} events/s"
            )
            complete = root / "lake" / "tables" / str(PROJECT_ID) / "2024/01/01/full_day/complete"
            schematized = {"type": "aws", "local_prefix": "tables", "schema_type": "monoschema"}
            httpx.post(
                f"{server.url}/api/2.0/nessie/pipeline/cancel",
                data={"project_id": str(PROJECT_ID), "name": "events-daily-s3-raw"},
                auth=(SA_USER, SA_SECRET),
                timeout=60,
            )  # one non-recurring pipeline per project at a time
            seconds = run(server, schematized, complete.exists)
            print(
                f"schematized Parquet (monoschema) to a local folder: {args.events:,} events in "
                f"{seconds:.1f} s = {args.events / seconds:,.0f} events/s"
            )
        finally:
            server.stop()
            s3.stop()


if __name__ == "__main__":
    main()
