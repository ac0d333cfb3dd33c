"""Two PyPI ingestion clients built on the official `mixpanel` SDK, unmodified, in a venv of their own:
`mixpanel-py-async` 0.3.0 (AsyncBufferedConsumer flushes batches from a thread: /track, /engage, /groups,
/import, and the SDK's `merge()`, which sends no `time`) and `aiomixpanel` 1.1.0 (AIOConsumer: one aiohttp
GET per message). Each consumer raises unless the server answers `{"status": 1}`; the test then reads what
was stored through export and the Query API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixhouse.domain.project import IdMerge
from tests.clients.support import DRIVERS_DIR, SA_AUTH, export_all, profiles, run_json, venv_python
from tests.server import PROJECT_ID, SECRET, TOKEN, ServerProcess, seed_catalog


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    python = venv_python("async-clients")
    data_dir = tmp_path_factory.mktemp("async-clients") / "data"
    # An Original ID Merge project, so the SDK's merge() is an identity event the project takes.
    seed_catalog(data_dir, id_merge=IdMerge.ORIGINAL)
    server = ServerProcess(data_dir).start()
    try:
        env = {"MP_BASE": server.url, "MP_TOKEN": TOKEN, "MP_SECRET": SECRET}
        got = run_json([str(python), str(DRIVERS_DIR / "async_clients_driver.py")], env=env, cwd=Path.cwd())
        yield server, got
    finally:
        server.stop()


def test_async_buffered_consumer(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, got = run
    assert got["buffered"] == {"ok": True}
    events = export_all(server.url)
    tracked = [e for e in events if e["event"] == "Async Tracked"]
    assert sorted({e["properties"]["i"] for e in tracked}) == [0, 1, 2, 3, 4]
    # The consumer's final synchronous flush can race its flushing thread over one buffer and send a batch
    # twice (a client race: mixpanel-py-async 0.3.0 on mixpanel 5.x). The copies share their $insert_id,
    # export returns them as sent, and the Query API counts each event once.
    by_insert_id: dict[str, set[int]] = {}
    for e in tracked:
        by_insert_id.setdefault(e["properties"]["$insert_id"], set()).add(e["properties"]["i"])
    assert len(by_insert_id) == 5 and all(len(v) == 1 for v in by_insert_id.values())
    day = datetime.fromtimestamp(tracked[0]["properties"]["time"], UTC).date().isoformat()
    counted = httpx.get(
        f"{server.url}/api/query/segmentation",
        params={"project_id": PROJECT_ID, "event": "Async Tracked", "from_date": day, "to_date": day},
        auth=SA_AUTH,
    ).json()["data"]["values"]["Async Tracked"][day]
    assert counted == 5
    [imported] = [e for e in events if e["event"] == "Async Imported"]
    assert (imported["properties"]["time"], imported["properties"]["k"]) == (1704067200, 1)
    [merge] = [e for e in events if e["event"] == "$merge"]
    assert merge["properties"]["$distinct_ids"] == ["async-0", "async-1"]
    props = profiles(server.url)["async-0"]
    assert props["plan"] == "pro"
    [charge] = props["$transactions"]
    assert charge["$amount"] == 12.5 and len(charge["$time"]) == 19
    group = httpx.post(
        f"{server.url}/api/2.0/engage",
        data={"project_id": PROJECT_ID, "data_group_id": "company"},
        auth=SA_AUTH,
    ).json()["results"]
    assert [(g["$distinct_id"], g["$properties"]["seats"]) for g in group] == [("acme", 10)]


def test_aiomixpanel(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, got = run
    assert got["aio"] == {"sent": 3, "errors": []}
    tracked = sorted(e["properties"]["n"] for e in export_all(server.url) if e["event"] == "AIO Tracked")
    assert tracked == [1, 2]
    assert profiles(server.url)["aio-1"]["plan"] == "team"
