"""A write that runs out of the engine's memory (MIXHOUSE_MEMORY_LIMIT) stores nothing and answers 503 in
the ingestion API's error format, retryable, never a 500; what was stored before stays readable."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import export
from tests.server import SECRET, ServerProcess, seed_catalog


def _events(n: int, keys: int, tag: str) -> list[dict[str, object]]:
    return [
        {
            "event": tag,
            "properties": {
                "distinct_id": f"u{i}",
                "time": 1704067200 + i,
                **{f"k{k}": "x" * 250 + str(i) for k in range(keys)},
            },
        }
        for i in range(n)
    ]


def test_a_write_out_of_memory_is_refused_with_503_and_nothing_is_lost(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env={"MIXHOUSE_MEMORY_LIMIT": "8MB"}).start()
    try:
        before = httpx.post(f"{server.url}/import?strict=1", json=_events(3, 1, "small"), auth=(SECRET, ""), timeout=60)
        assert before.status_code == 200, before.text
        big = httpx.post(f"{server.url}/import?strict=1", json=_events(200, 38, "big"), auth=(SECRET, ""), timeout=120)
        assert big.status_code == 503, big.text
        body = big.json()
        assert body["code"] == 503 and body["status"] == "Service Unavailable", body
        assert body["error"].startswith("the write failed and was not stored; retry with backoff (Out of Memory")
        assert "\n" not in body["error"]  # one line, not DuckDB's advice
    finally:
        server.stop()
    # Read back under the default limit (the refused batch widened the table, whose scans 8 MB may not hold).
    server = ServerProcess(data_dir).start()
    try:
        assert sorted(str(e["event"]) for e in export(server.url)) == ["small"] * 3
    finally:
        server.stop()
