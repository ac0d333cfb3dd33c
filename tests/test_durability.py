"""An acknowledged write survives SIGKILL: a client imports batches while the server is killed and
restarted several times; afterwards every acknowledged event is exported exactly once, and events
whose request died with the server appear at most once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import export
from tests.server import SECRET, ServerProcess, seed_catalog

KILLS = 4
BATCH = 250


def test_acknowledged_imports_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    acked: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def client() -> None:
        batch_no = 0
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                batch_no += 1
                ids = [f"b{batch_no}-e{i}" for i in range(BATCH)]
                body = [
                    {
                        "event": "Durable",
                        "properties": {
                            "distinct_id": f"u{i % 7}",
                            "time": 1704067200 + i,
                            "$insert_id": eid,
                            "eid": eid,
                        },
                    }
                    for i, eid in enumerate(ids)
                ]
                sent.extend(ids)
                try:
                    r = http.post(f"{server.url}/import?strict=1", json=body, auth=(SECRET, ""))
                except httpx.HTTPError:
                    time.sleep(0.05)  # the server is down; the next batch goes to the restarted one
                    continue
                if r.status_code == 200:
                    assert r.json()["num_records_imported"] == BATCH
                    acked.extend(ids)

    def acknowledged_more(than: int) -> None:
        """Wait until the client has two more batches acknowledged (however slowly a loaded machine
        restarts the server), so that every kill lands in the middle of acknowledged ingestion."""
        deadline = time.monotonic() + 120
        while len(acked) < than + 2 * BATCH:
            assert time.monotonic() < deadline, "the server acknowledged nothing for two minutes"
            time.sleep(0.02)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for _ in range(KILLS):
            acknowledged_more(len(acked))
            time.sleep(0.1)  # and some in flight
            server.kill()
            server.start()
        acknowledged_more(len(acked))
    finally:
        stop.set()
        thread.join()

    events = export(server.url)
    server.stop()
    counts = Counter(str(e["properties"]["eid"]) for e in events)  # type: ignore[index]
    assert len(acked) > BATCH * KILLS, "the client should have been acknowledged many batches"
    missing = [eid for eid in acked if counts[eid] != 1]
    assert not missing, f"{len(missing)} acknowledged events lost or doubled, e.g. {missing[:5]}"
    assert all(counts[eid] <= 1 for eid in sent)
    assert set(counts) <= set(sent)


def test_profile_updates_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    try:
        for i in range(50):
            r = httpx.post(
                f"{server.url}/engage",
                data={
                    "data": f'{{"$token":"TOKEN123","$distinct_id":"kill-user","$add":{{"n":1}},"$set":{{"last":{i}}}}}',
                    "verbose": "1",
                },
                timeout=60,
            )
            assert r.json() == {"status": 1, "error": None}
    finally:
        server.kill()  # also when a request failed: never left running
    from mixhouse.engine.duckdb import DuckDBEngine

    engine = DuckDBEngine(data_dir)
    try:
        profile = engine.profile(4242, "kill-user")
    finally:
        engine.close()
    assert profile is not None
    assert profile["n"] == 50
    assert profile["last"] == 49
