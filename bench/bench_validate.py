"""What the request side of /import costs per event, in process (no HTTP): orjson's parse of a 2,000-event
body, then `import_events` (validation and the stored documents) on the batch path and on the per-event
path, for batches the batch path takes (the events of bench/bench_ingest.py) and for batches it leaves
(the same events, one of them with a list property).

    .venv/bin/python -m bench.bench_validate [--runs 5] [--batches 40]

Each run prepares `--batches` different batches, parsed just before, keeping the last four batches'
results alive as a server does while their commits are in flight: the CPU time then includes the cache
misses and allocations a server pays, which a loop over one batch would hide (it reads ~2x faster). The
time to free each batch (the request's objects, after its reply) is counted too. Prints the median of
`--runs` runs, µs of this thread's CPU per event."""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import event, machine, median
from mixhouse.domain import events as ev
from mixhouse.domain import ingestion, payloads
from mixhouse.domain.project import Project

BATCH = 2000
PROJECT = Project(id=1, name="bench", token="t", secret="s", api_key="k")


def bodies(count: int, *, with_list: bool) -> list[bytes]:
    out = []
    for b in range(count):
        records: list[dict[str, Any]] = [event(b * BATCH + i) for i in range(BATCH)]
        if with_list:
            records[BATCH // 2]["properties"]["tags"] = ["a", "b"]
        out.append(orjson.dumps(records))
    return out


def per_event_path(records: list[Any], ctx: ev.IngestContext) -> ingestion.IngestResult:
    """import_events without the batch path (what it did before the batch path existed)."""
    prepared = ev.prepare_events(records, lambda _p: PROJECT, ctx)
    result = ingestion.IngestResult(accepted=prepared.accepted)
    result.batch.events = prepared.events
    return result


def run(batches: list[bytes], prepare: Callable[[list[Any], ev.IngestContext], object] | None) -> float:
    """µs of CPU per event: parse, prepare (unless None), and free each batch four batches later."""
    ctx = ev.IngestContext(endpoint=ev.Endpoint.IMPORT, received_ms=int(time.time() * 1000), api_host="127.0.0.1")
    in_flight: collections.deque[object] = collections.deque()
    started = time.thread_time()
    for body in batches:
        records = payloads.parse_json_body(body)
        in_flight.append((records, prepare(records, ctx) if prepare else None))
        del records
        if len(in_flight) > 4:
            in_flight.popleft()
    in_flight.clear()
    return (time.thread_time() - started) / (len(batches) * BATCH) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"µs of CPU per event, medians of {args.runs} runs of {args.batches} batches of {BATCH} (parse included)")
    for label, with_list in (("flat events", False), ("one event with a list", True)):
        data = bodies(args.batches, with_list=with_list)
        now = ev.IngestContext(endpoint=ev.Endpoint.IMPORT, received_ms=int(time.time() * 1000), api_host="h")
        records = orjson.loads(data[0])
        taken = ev._prepare_plain_batch(records, ev.encoded_records(records) or [], PROJECT, now) is not None
        assert taken is not with_list
        figures: dict[str, list[float]] = {"parse only": [], "import_events": [], "per-event path": []}
        for _ in range(args.runs):
            figures["parse only"].append(run(data, None))
            figures["import_events"].append(run(data, lambda r, c: ingestion.import_events(PROJECT, r, c)))
            figures["per-event path"].append(run(data, per_event_path))
        print(f"\n{label}:")
        for name, values in figures.items():
            print(f"  {name:16} {median(values):6.2f}   runs {', '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main()
