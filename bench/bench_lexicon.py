"""What Lexicon schemas cost the hot paths: /import throughput with no schemas and with 1,000 event
schemas (one of them dropped, so one event in four is refused and reported), and /events/names latency
with and without hidden events.

    .venv/bin/python -m bench.bench_lexicon [--batches 20] [--runs 3]

2,000-event batches sent one at a time (the figure is per-request overhead, not peak throughput). The
load generator shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.common import event, machine, median, start_server
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET

SCHEMAS = f"/api/app/projects/{PROJECT_ID}/schemas"


def import_rate(base: str, batches: list[bytes]) -> tuple[float, int]:
    """(events per second offered, events stored), batches sent in turn."""
    stored = 0
    with httpx.Client(base_url=base, timeout=120, auth=(SECRET, "")) as http:
        started = time.perf_counter()
        for body in batches:
            response = http.post("/import", content=body, headers={"content-type": "application/json"})
            stored += int(response.json()["num_records_imported"])
        elapsed = time.perf_counter() - started
    return len(batches) * 2000 / elapsed, stored


def names_ms(base: str, n: int) -> float:
    times = []
    with httpx.Client(base_url=base, timeout=60, auth=(SA_USER, SA_SECRET)) as http:
        for _ in range(n):
            started = time.perf_counter()
            http.get("/api/query/events/names", params={"project_id": PROJECT_ID, "from_date": "2024-01-01",
                                                        "to_date": "2024-01-31"})  # fmt: skip
            times.append((time.perf_counter() - started) * 1000)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            offset = 0

            def batches() -> list[bytes]:
                nonlocal offset
                made = [orjson.dumps([event(offset + b * 2000 + i) for i in range(2000)]) for b in range(args.batches)]
                offset += args.batches * 2000
                return made

            plain = [import_rate(server.url, batches())[0] for _ in range(args.runs)]
            print(f"/import, no schemas:                   median {median(plain):,.0f} events/s")
            before = names_ms(server.url, 50)

            entries = [{"entityType": "event", "name": f"Event {i}", "schemaJson": {}} for i in range(999)]
            entries.append(
                {
                    "entityType": "event",
                    "name": "Added To Cart",
                    "schemaJson": {"metadata": {"com.mixpanel": {"dropped": True}}},
                }
            )
            entries[0]["schemaJson"] = {"metadata": {"com.mixpanel": {"hidden": True}}}
            entries[0]["name"] = "Viewed Page"
            written = httpx.post(server.url + SCHEMAS, json={"entries": entries}, auth=(SA_USER, SA_SECRET), timeout=60)
            assert written.status_code == 200, written.text
            runs = [import_rate(server.url, batches()) for _ in range(args.runs)]
            rate = median([r for r, _ in runs])
            kept = runs[0][1] / (args.batches * 2000)
            print(f"/import, 1,000 schemas, one dropped:   median {rate:,.0f} events/s offered ({kept:.0%} stored)")
            after = names_ms(server.url, 50)
            print(f"/events/names: median {before:.2f} ms without schemas, {after:.2f} ms with one hidden of 1,000")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
