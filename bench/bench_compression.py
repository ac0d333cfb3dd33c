"""What the compression of the events table's string columns costs at a checkpoint, on disk, and at
read time: DuckDB's own choice (DICT_FSST for these columns) against a column forced to another method
with `USING COMPRESSION` (DuckDB 2.0), on the same rows.

    .venv/bin/python -m bench.bench_compression [--events 600000] [--data sdk|bench]

The rows are written as /import writes them (2,000-row transactions, the WAL growing) and then folded
into the file by one CHECKPOINT, whose CPU and wall time are printed with the file's size. Reads (median
of 5, a fresh connection): every `properties` value, a group by one key, a 2,000-row seq range, a
`where` on one key. `--data sdk` gives each event the varied properties a browser SDK sends (URLs with
ids, random insert ids, device ids); `--data bench` the few repeated values of bench/bench_ingest.py."""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

import duckdb
import orjson
import pyarrow as pa

from bench.common import event, machine

BATCH = 2000
COLUMNS = (
    ("project_id", "BIGINT"),
    ("seq", "BIGINT"),
    ("time_ms", "BIGINT"),
    ("event", "VARCHAR"),
    ("distinct_id", "VARCHAR"),
    ("insert_id", "VARCHAR"),
    ("properties", "VARCHAR"),
    ("user_key", "UBIGINT"),
)
VARIANTS: dict[str, dict[str, str]] = {
    "DuckDB's choice": {},
    "properties zstd": {"properties": "zstd"},
    "insert_id zstd": {"insert_id": "zstd"},
    "insert_id uncompressed": {"insert_id": "uncompressed"},
}
READS = {
    "all properties": "SELECT properties FROM events",
    "group by a key": "SELECT properties->>'plan' AS p, count(*) FROM events GROUP BY p",
    "2k-row range": "SELECT properties FROM events WHERE seq BETWEEN 300000 AND 301999",
    "where on a key": "SELECT count(*) FROM events WHERE properties->>'plan' = 'pro'",
}


def sdk_event(i: int, rng: random.Random) -> dict[str, Any]:
    device = uuid.UUID(int=rng.randrange(100_000)).hex
    pages = ("p", "c", "s")
    return {
        "event": rng.choice(("$mp_web_page_view", "Viewed Product", "Search", "Added To Cart", "Checkout")),
        "properties": {
            "distinct_id": f"$device:{device}",
            "time": 1_704_067_200 + i // 20,
            "$insert_id": "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=16)),
            "$os": rng.choice(("Windows", "Mac OS X", "iOS", "Android", "Linux")),
            "$browser": rng.choice(("Chrome", "Safari", "Firefox", "Edge")),
            "$browser_version": rng.choice((120, 121, 122, 17.1, 115)),
            "$current_url": f"https://shop.example.com/{rng.choice(pages)}/{rng.randrange(5000)}"
            f"?utm_source={rng.choice(('google', 'newsletter', 'fb'))}&q={rng.randrange(10**6)}",
            "$referrer": rng.choice(("https://www.google.com/", "$direct", "https://t.co/abc")),
            "$screen_width": rng.choice((1366, 1440, 1920, 2560)),
            "$device_id": device,
            "mp_lib": "web",
            "$lib_version": "2.55.1",
            "plan": rng.choice(("free", "pro", "team")),
            "product_id": rng.randrange(100_000),
            "price": round(rng.random() * 200, 2),
            "search_term": "".join(rng.choices("abcdefghij ", k=rng.randrange(3, 20))),
        },
    }


def rows(n: int, data: str) -> pa.Table:
    rng = random.Random(7)
    events = [sdk_event(i, rng) if data == "sdk" else event(i) for i in range(n)]
    props: list[dict[str, Any]] = [cast(dict[str, Any], e["properties"]) for e in events]
    return pa.table(
        {
            "project_id": pa.array([1] * n, pa.int64()),
            "seq": pa.array(range(n), pa.int64()),
            "time_ms": pa.array([p["time"] * 1000 for p in props], pa.int64()),
            "event": pa.array([e["event"] for e in events]),
            "distinct_id": pa.array([p["distinct_id"] for p in props]),
            "insert_id": pa.array([p["$insert_id"] for p in props]),
            "properties": pa.array(
                [orjson.dumps({k: v for k, v in p.items() if k not in ("distinct_id", "time")}).decode() for p in props]
            ),
            "user_key": pa.array([hash(p["distinct_id"]) & (2**63 - 1) for p in props], pa.uint64()),
        }
    )


def measure(table: pa.Table, methods: dict[str, str], folder: Path) -> tuple[float, float, int, dict[str, float]]:
    path = folder / "events.duckdb"
    con = duckdb.connect(str(path), config={"checkpoint_threshold": "100GB"})
    columns = ", ".join(
        f"{name} {kind}" + (f" USING COMPRESSION {methods[name]}" if name in methods else "") for name, kind in COLUMNS
    )
    con.execute(f"CREATE TABLE events ({columns})")
    for start in range(0, len(table), BATCH):
        chunk = table.slice(start, BATCH)  # noqa: F841 (read by DuckDB by its name)
        con.execute("INSERT INTO events SELECT * FROM chunk")
    wall, cpu = time.perf_counter(), time.process_time()
    con.execute("CHECKPOINT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    con.close()
    size = path.stat().st_size
    con = duckdb.connect(str(path), read_only=True)
    reads = {}
    for label, sql in READS.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            con.sql(sql).to_arrow_table()
            times.append(time.perf_counter() - started)
        reads[label] = statistics.median(times)
    con.close()
    path.unlink()
    return cpu, wall, size, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--data", choices=("sdk", "bench"), default="sdk")
    args = parser.parse_args()
    print(machine())
    table = rows(args.events, args.data)
    print(f"{args.events:,} events ({args.data} properties), {table.nbytes / 2**20:.0f} MiB as Arrow")
    print(f"{'':24s} {'checkpoint CPU':>16s} {'wall':>7s} {'file':>9s}   " + "  ".join(f"{k:>15s}" for k in READS))
    with tempfile.TemporaryDirectory() as folder:
        for name, methods in VARIANTS.items():
            cpu, wall, size, reads = measure(table, methods, Path(folder))
            print(
                f"{name:24s} {cpu * 1000:8.0f} ms {cpu / args.events * 1e6:4.2f} µs {wall * 1000:5.0f} ms"
                f" {size / 2**20:6.1f} MiB   " + "  ".join(f"{reads[k] * 1000:12.1f} ms" for k in READS),
                flush=True,
            )


if __name__ == "__main__":
    main()
