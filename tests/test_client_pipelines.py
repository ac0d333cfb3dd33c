"""The Python client's pipeline methods (clients/python) against a real server writing to a local folder."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from mixhouse_client import AsyncClient, BadRequest, Client, NotFound, ProjectSecret, ServiceAccount

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

SA = ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)
DAY = "2024-05-06"
T = 1714953600  # 2024-05-06T00:00:00Z


@pytest.fixture(scope="module")
def lake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("client-pipelines")
    seed_catalog(root / "data")
    env = {
        "MIXHOUSE_PIPELINE_LOCAL_DIR": str(root / "lake"),
        "MIXHOUSE_PIPELINE_TICK_SECONDS": "0.2",
        "MIXHOUSE_PIPELINE_MAX_BACKFILL_DAYS": "100000",
    }
    server = ServerProcess(root / "data", env=env).start()
    yield server, root / "lake"
    server.stop()


def test_the_client_creates_watches_edits_and_cancels_a_pipeline(lake_server: tuple[ServerProcess, Path]) -> None:
    server, lake = lake_server
    with Client(base_url=server.url, credentials=SA) as mp:
        events = [
            {"event": name, "properties": {"time": T + i, "distinct_id": "u", "$insert_id": f"c{i}"}}
            for i, name in enumerate(["A", "B", "A"])
        ]
        assert mp.import_events(events).ok
        names = mp.pipelines.create("s3-raw", from_date=DAY, to_date=DAY, events=["A"], local_prefix="client")
        assert names == ["events-daily-s3-raw"]
        done = lake / "client" / str(PROJECT_ID) / "2024/05/06/full_day"
        deadline = time.monotonic() + 60
        while not (done / "complete").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        lines = gzip.decompress((done / "export-part-00000.json.gz").read_bytes()).splitlines()
        assert [orjson.loads(line)["properties"]["$insert_id"] for line in lines] == ["c0", "c2"]  # events=["A"]
        assert [p["name"] for p in mp.pipelines.list()] == ["events-daily-s3-raw"]
        assert mp.pipelines.status("events-daily-s3-raw", summary=True) == {"succeeded": 1}
        assert mp.pipelines.timeline("events-daily-s3-raw")[0]["status"] == "synced"
        mp.pipelines.edit("events-daily-s3-raw", where='properties["x"] == 1')
        mp.pipelines.pause("events-daily-s3-raw")
        mp.pipelines.resume("events-daily-s3-raw")
        with pytest.raises(BadRequest):
            mp.pipelines.create("s3-raw", from_date=DAY, to_date="2024-05-01", local_prefix="client")
        mp.pipelines.cancel("events-daily-s3-raw")
        with pytest.raises(NotFound):
            mp.pipelines.status("events-daily-s3-raw")

    async def listed() -> list[str]:
        async with AsyncClient(base_url=server.url, credentials=ProjectSecret(SECRET)) as amp:
            return [p["name"] for p in await amp.pipelines.list()]

    assert asyncio.run(listed()) == []
