"""`limit` on /api/2.0/export counts rows exactly, also when it is large. DuckDB 2.0.0's optimizer can drop
a large LIMIT (a full sort rather than a top-N) over the identity join when no ids are merged, and then
the whole window came back: 12,000 events and limit=10000 gave 12,000 lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server import SECRET, ServerProcess, seed_catalog

EVENTS = 12_000
DAY = {"from_date": "2023-11-14", "to_date": "2023-11-14"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("export-limit") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    with httpx.Client(base_url=proc.url, auth=(SECRET, ""), timeout=120) as http:
        for b in range(EVENTS // 2000):
            events = [
                {
                    "event": "e",
                    "properties": {
                        "time": 1_699_999_200_000 + b * 2000 + i,  # 2023-11-14 22:00 UTC, one hour
                        "distinct_id": f"u{i % 300}",
                        "$insert_id": f"{b}-{i}",
                        "n": b * 2000 + i,
                    },
                }
                for i in range(2000)
            ]
            http.post("/import", content=orjson.dumps(events), params={"strict": "1"}).raise_for_status()
    yield proc
    proc.stop()


@pytest.mark.parametrize("limit", [1, 5_000, 10_000, 11_999, 12_000, 100_000])
def test_a_large_limit_gives_exactly_that_many_rows_the_first_in_time_order(server: ServerProcess, limit: int) -> None:
    response = httpx.get(f"{server.url}/api/2.0/export", params={**DAY, "limit": limit}, auth=(SECRET, ""), timeout=120)
    assert response.status_code == 200
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert len(rows) == min(limit, EVENTS)
    assert [r["properties"]["n"] for r in rows] == list(range(len(rows)))
