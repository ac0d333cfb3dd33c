"""Identity mappings export: the rate (rows/s) at which `Engine.identity_mappings` streams a project's merged
ids on DuckDB and on chDB, and at which a people pipeline writes `mp_identity_mappings_data` to a real
S3-compatible server on loopback (moto's server mode).

The map is generated in bulk straight into each engine's `identity_map` (no HTTP): `--ids` merged ids in
clusters of four (three ids and the canonical one), so the table has `--ids` + `--ids`/3 rows. The pipeline's
time is taken from `create` to the table's `complete` file (the tick is 0.2 s; the project has no profiles).

    .venv/bin/python -m bench.bench_pipelines_identity                  # 1M merged ids
    .venv/bin/python -m bench.bench_pipelines_identity --ids 200000     # smaller
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from bench.common import machine
from mixhouse.compose import open_engine
from mixhouse.engine.base import Engine
from mixhouse.engine.clickhouse.engine import ClickHouseEngine
from mixhouse.engine.duckdb.engine import DuckDBEngine
from mixhouse.settings import load_settings
from tests.s3server import KEY, SECRET, S3Server
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

BUCKET = "bench"


def generate_duckdb(data_dir: Path, ids: int) -> None:
    DuckDBEngine(data_dir).close()  # creates the schema
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    conn.execute(
        """INSERT INTO identity_map (project_id, distinct_id, canonical_id)
           SELECT $p, '$device:' || md5(i::VARCHAR), 'user-' || (i // 3) FROM range($ids) t(i)""",
        {"p": PROJECT_ID, "ids": ids},
    )
    conn.execute("CHECKPOINT")
    conn.close()


def generate_chdb(engine: ClickHouseEngine, ids: int) -> None:
    version = engine.store.version()
    rows = ((PROJECT_ID, f"$device:{i:032x}", f"user-{i // 3}", version, 0) for i in range(ids))
    engine.store.insert("identity_map", ("project_id", "distinct_id", "canonical_id", "version", "deleted"), rows)


def stream_rate(engine: Engine) -> tuple[int, float]:
    start = time.perf_counter()
    rows = sum(len(batch) for batch in engine.identity_mappings(PROJECT_ID))
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        seed_catalog(data_dir)
        generate_duckdb(data_dir, args.ids)
        engine = DuckDBEngine(data_dir)
        try:
            rows, seconds = stream_rate(engine)
        finally:
            engine.close()
        print(f"Engine.identity_mappings, DuckDB: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s")
        chdb_dir = root / "chdb"
        chdb = open_engine(load_settings({"engine": "chdb", "data_dir": chdb_dir}, env={}))
        try:
            assert isinstance(chdb, ClickHouseEngine)
            generate_chdb(chdb, args.ids)
            rows, seconds = stream_rate(chdb)
        finally:
            chdb.close()
        print(f"Engine.identity_mappings, chDB: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s")

        s3 = S3Server(root / "moto.log").start()
        s3.client().create_bucket(Bucket=BUCKET)
        env = {
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "MIXHOUSE_PIPELINE_TICK_SECONDS": "0.2",
            "MIXHOUSE_PIPELINE_MAX_BACKFILL_DAYS": "100000",
        }
        server = ServerProcess(data_dir, env=env).start()
        try:
            folder = f"ids/{PROJECT_ID}/mp_identity_mappings_data"
            start = time.perf_counter()
            r = httpx.post(
                f"{server.url}/api/2.0/nessie/pipeline/create",
                data={"project_id": str(PROJECT_ID), "type": "aws", "data_source": "people", "s3_bucket": BUCKET,
                      "s3_prefix": "ids", "s3_endpoint_url": s3.url, "from_date": "2024-01-01"},
                auth=(SA_USER, SA_SECRET),
                timeout=60,
            )  # fmt: skip
            assert r.status_code == 200, r.text
            while f"{folder}/complete" not in s3.keys(BUCKET, folder):
                time.sleep(0.05)
            seconds = time.perf_counter() - start
            parts = len(s3.keys(BUCKET, folder)) - 1
            print(
                f"people pipeline to S3 (moto, loopback): mp_identity_mappings_data, {rows:,} rows, {parts} files in "
                f"{seconds:.1f} s = {rows / seconds:,.0f} rows/s"
            )
        finally:
            server.stop()
            s3.stop()


if __name__ == "__main__":
    main()
