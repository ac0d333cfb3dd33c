"""A full disk never leaves the server unusable (docs/operations.md), on a real small filesystem (a tmpfs;
the tests mount one, so they run as root, as CI does).

1. Writes leave room for the next checkpoint: with MIXHOUSE_DISK_RESERVE_BYTES=0 (the review's setting)
   imports until the disk is full answer 200 or 503, never 500, reads keep working, and the store takes
   writes again once space returns.
2. If DuckDB invalidates the database anyway (here: a checkpoint that hits ENOSPC because another process
   filled the disk between the admission of a write and its commit), the engine reports it in its
   health, answers Unavailable (503) instead of DuckDB's fatal error, and reopens itself once space
   returns, with every acknowledged write intact.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb.engine import DuckDBEngine
from mixhouse.errors import Unavailable
from mixhouse.settings import load_settings
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

MB = 1024 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    assert done.returncode == 0, f"these tests need to mount a tmpfs (root): {done.stderr.decode()}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    ballast = disk / "ballast"
    free = shutil.disk_usage(disk).free
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return ballast


def batch(start: int, n: int = 2000) -> WriteBatch:
    pad = "y" * 2000
    return WriteBatch(
        events=[
            StoredEvent(1, 1_700_000_000_000 + i, "e", f"u{i % 100}", f"i{i}", f'{{"pad":"{pad}","n":{i}}}'.encode())
            for i in range(start, start + n)
        ]
    )


def count(engine: DuckDBEngine) -> int:
    row = engine.reader().execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else -1


def test_an_invalidated_store_answers_unavailable_and_reopens_when_space_returns(
    tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXHOUSE_DISK_RESERVE_BYTES", "0")
    monkeypatch.setenv(
        "MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES", str(16 * MB)
    )  # DuckDB's own: the drill below counts on it
    engine = DuckDBEngine.from_settings(load_settings({"data_dir": tmpfs / "data"}))  # the environment set above
    try:
        engine.submit(batch(0)).result()
        acknowledged = 2000
        # ~4 MB of WAL per batch: three more fit in 13 MB, and the checkpoint the third one triggers
        # (the WAL passes 16 MB) does not. The writes go to the writer's commit directly, as when the
        # disk fills between a request's admission and its commit.
        ballast = fill(tmpfs, 13 * MB)
        failure: Unavailable | None = None
        for _ in range(10):
            try:
                engine._write_group([batch(acknowledged)])
            except Unavailable as exc:
                failure = exc
                break
            acknowledged += 2000
        assert failure is not None and "reopens when it can" in failure.message
        assert any("closed after a failure" in p for p in engine.health())
        with pytest.raises(Unavailable):
            engine.profile(1, "u1")
        with pytest.raises(Unavailable):
            engine.submit(batch(10**6)).result()

        ballast.unlink()
        deadline = time.monotonic() + 15
        while engine.health() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engine.health() == []
        assert count(engine) == acknowledged
        engine.submit(batch(2 * 10**6, 10)).result()
        assert count(engine) == acknowledged + 10
    finally:
        engine.close()


def test_writes_until_the_disk_is_full_answer_503_never_500(tmpfs: Path) -> None:
    data_dir = tmpfs / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env={"MIXHOUSE_DISK_RESERVE_BYTES": "0"})
    server.log_path = tmpfs.parent / "server.log"
    server.start()
    pad = "x" * 300
    try:
        acknowledged: list[str] = []
        statuses: set[int] = set()
        with httpx.Client(base_url=server.url, auth=(SECRET, ""), timeout=120) as http:
            for b in range(200):
                events = [
                    {
                        "event": "e",
                        "properties": {
                            "time": 1_700_000_000 + b,
                            "distinct_id": "u",
                            "$insert_id": f"d{b}-{i}",
                            "pad": pad,
                        },
                    }
                    for i in range(2000)
                ]
                response = http.post("/import", json=events, params={"project_id": PROJECT_ID})
                statuses.add(response.status_code)
                if response.status_code == 503:
                    assert response.json()["error"] == "the server is low on disk space; retry with backoff"
                    break
                assert response.status_code == 200, response.text
                acknowledged += [e["properties"]["$insert_id"] for e in events]
            assert statuses == {200, 503}
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "for the next checkpoint" in ready.json()["problems"][0]
            exported = http.get(
                "/api/2.0/export",
                params={"project_id": PROJECT_ID, "from_date": "2023-11-14", "to_date": "2023-11-15"},
                auth=(SA_USER, SA_SECRET),
            )
            assert exported.status_code == 200
            assert len(exported.content.splitlines()) == len(acknowledged)
            # Room for the checkpoint was kept: the store itself never failed.
            assert "invalidated" not in server.log_path.read_text()
    finally:
        server.stop()
