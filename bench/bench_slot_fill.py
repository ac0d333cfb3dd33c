"""The writer's property-slot fill alone: CPU time per 2000-event batch, in-process, no HTTP.

    .venv/bin/python -m bench.bench_slot_fill [--batches 40]

Writes batches of events shaped as /import stores them (bench.common.event plus the server's own keys,
a list and an object) into an in-memory DuckDB events table through `property_columns.SlotWriter`
(prepare: parse and slot census; insert: the slot columns and the INSERT), and the same batches with a
plain INSERT of the base columns, without slot columns. Prints the medians of the process's CPU time
(all threads: DuckDB's too), steadier than wall time on a shared machine. Run it in a checkout of
another revision (PYTHONPATH=that checkout) to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from bench.common import event, machine
from mixhouse.engine.duckdb import property_columns
from mixhouse.engine.duckdb.schema import SCHEMA, user_key_sql

SIZE = 2000
BASE = "project_id, seq, time_ms, event, distinct_id, insert_id, properties"


def _batch(start: int) -> tuple[pa.Table, list[bytes]]:
    docs = []
    for i in range(start, start + SIZE):
        props: dict[str, Any] = dict(event(i)["properties"])  # type: ignore[call-overload]
        for key in ("distinct_id", "time"):
            props.pop(key)
        props.update(
            {
                "$import": True,
                "$mp_api_endpoint": "127.0.0.1",
                "$mp_api_timestamp_ms": 1704067200000 + i,
                "$mp_event_size": 220,
                "mp_processing_time_ms": 1704067200000 + i,
                "tags": ["a", i % 7],
                "nested": {"x": i},
            }
        )
        docs.append(orjson.dumps(props))
    table = pa.table(
        {
            "project_id": pa.array([1] * SIZE, pa.int64()),
            "seq": pa.array(range(start, start + SIZE), pa.int64()),
            "time_ms": pa.array([1704067200000 + i for i in range(start, start + SIZE)], pa.int64()),
            "event": pa.array(["Viewed Page"] * SIZE, pa.string()),
            "distinct_id": pa.array([f"user-{i % 1000}" for i in range(start, start + SIZE)], pa.string()),
            "insert_id": pa.array([f"ins-{i}" for i in range(start, start + SIZE)], pa.string()),
            "properties": pa.array(docs, pa.binary()).cast(pa.string()),
        }
    )
    return table, docs


def _run(batches: int, slots: bool) -> tuple[float, float]:
    """(median CPU ms of prepare, of the whole write) per batch; the first 3 batches are warm-up."""
    conn = duckdb.connect()
    conn.execute(SCHEMA)
    property_columns.ensure_tables(conn)
    writer = property_columns.SlotWriter(conn)
    prepare_ms: list[float] = []
    total_ms: list[float] = []
    for b in range(batches):
        table, docs = _batch(b * SIZE)
        started = time.process_time()
        conn.execute("BEGIN TRANSACTION")
        if slots:
            prepared = writer.prepare(conn, "incoming", table, docs)
            prepare_ms.append((time.process_time() - started) * 1000)
            writer.insert(conn, "incoming", table, prepared, user_key_sql("distinct_id"))
        else:
            conn.register("incoming", table)
            conn.execute(
                f"INSERT INTO events ({BASE}, user_key) SELECT {BASE}, {user_key_sql('distinct_id')} FROM incoming"
            )
        conn.execute("COMMIT")
        conn.unregister("incoming")
        total_ms.append((time.process_time() - started) * 1000)
    conn.close()
    return (statistics.median(prepare_ms[3:]) if prepare_ms else 0.0), statistics.median(total_ms[3:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    prepare, with_slots = _run(args.batches, slots=True)
    _, plain = _run(args.batches, slots=False)
    print(f"CPU ms per {SIZE}-event batch (medians of {args.batches - 3}):")
    print(f"  slot writer, prepare (parse, census)      {prepare:8.2f}")
    print(f"  slot writer, prepare + insert + commit     {with_slots:8.2f}")
    print(f"  plain insert + commit, no slot columns     {plain:8.2f}")
    print(
        f"  slot fill cost                             {with_slots - plain:8.2f}  ({(with_slots - plain) / SIZE * 1000:.2f} us/event)"
    )


if __name__ == "__main__":
    main()
