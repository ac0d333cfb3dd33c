"""`mixhouse backup` against a running server while a client imports, then `mixhouse restore`: the
restored store holds every batch acknowledged before the backup started, and only whole batches (a
consistent copy). Also: a stopped server's data dir, and the refusals."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.conftest import export
from tests.server import SECRET, TOKEN, ServerProcess, seed_catalog

BATCH = 200
T0 = 1704067200  # 2024-01-01T00:00:00Z


def mixhouse(*args: str) -> tuple[int, Any]:
    done = subprocess.run([sys.executable, "-m", "mixhouse", *args], capture_output=True, timeout=300)
    return done.returncode, orjson.loads(done.stdout) if done.stdout.strip() else done.stderr.decode()


def batch_body(batch_no: int) -> list[dict[str, Any]]:
    return [
        {
            "event": "Backed",
            "properties": {
                "distinct_id": f"u{i % 11}",
                "time": T0 + batch_no * BATCH + i,
                "$insert_id": f"b{batch_no}-e{i}",
                "batch": batch_no,
            },
        }
        for i in range(BATCH)
    ]


def batches_in(url: str) -> Counter[int]:
    return Counter(int(str(e["properties"]["batch"])) for e in export(url, event='["Backed"]'))  # type: ignore[index]


def test_an_online_backup_while_importing_restores_every_batch_acknowledged_before_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    acked: list[int] = []
    stop = threading.Event()
    errors: list[str] = []

    def client() -> None:
        batch_no = 0
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"{server.url}/import?strict=1", json=batch_body(batch_no), auth=(SECRET, ""))
                if r.status_code != 200:
                    errors.append(r.text)
                    return
                acked.append(batch_no)
                batch_no += 1

    thread = threading.Thread(target=client)
    thread.start()
    try:
        while len(acked) < 5:
            time.sleep(0.05)
        acked_before = len(acked)  # batches 0 .. acked_before - 1 were acknowledged before the backup started
        status, manifest = mixhouse("backup", "--data-dir", str(data_dir), "--to", str(tmp_path / "backup"))
        acked_after = len(acked)
        while len(acked) < acked_after + 3:  # ingestion goes on after the backup
            assert not errors, errors
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
        server.stop()
    assert not errors, errors
    assert status == 0, manifest
    assert manifest["online"] is True
    assert acked_after > acked_before  # the backup ran beside the client's writes

    status, restored = mixhouse("restore", "--from", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "restored"))
    assert status == 0, restored
    assert restored["rows"]["events"] == manifest["rows"]["events"]
    again = ServerProcess(tmp_path / "restored").start()
    try:
        found = batches_in(again.url)
        # The project, its token and its secret came back with the catalog.
        r = httpx.post(
            f"{again.url}/track",
            data={"data": orjson.dumps({"event": "After", "properties": {"token": TOKEN}}).decode()},
        )
        assert r.text == "1"
    finally:
        again.stop()
    assert set(found.values()) == {BATCH}  # whole batches only
    kept = sorted(found)
    assert kept == list(range(len(kept)))  # one client, one batch at a time: a prefix of what it sent
    assert len(kept) >= acked_before
    assert len(kept) <= len(acked)
    assert manifest["rows"]["events"] == len(kept) * BATCH


def test_a_stopped_servers_data_dir_is_backed_up_by_the_command_itself(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    try:
        r = httpx.post(f"{server.url}/import?strict=1", json=batch_body(0), auth=(SECRET, ""), timeout=30)
        assert r.status_code == 200, r.text
    finally:
        server.kill()  # the WAL is not folded in: the copy reads it
    status, manifest = mixhouse("backup", "--data-dir", str(data_dir), "--to", str(tmp_path / "backup"))
    assert status == 0, manifest
    assert manifest["online"] is False
    assert manifest["rows"]["events"] == BATCH
    status, _ = mixhouse("restore", "--from", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "restored"))
    assert status == 0
    again = ServerProcess(tmp_path / "restored").start()
    try:
        assert batches_in(again.url) == {0: BATCH}
    finally:
        again.stop()


def test_refusals(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    try:
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        status, reply = mixhouse("backup", "--data-dir", str(data_dir), "--to", str(tmp_path / "full"))
        assert status == 1
        assert "is not an empty folder" in reply["error"]
        status, reply = mixhouse("backup", "--data-dir", str(tmp_path / "nowhere"), "--to", str(tmp_path / "b"))
        assert status == 1
        assert "no mixhouse data dir" in reply["error"]
        status, manifest = mixhouse("backup", "--data-dir", str(data_dir), "--to", str(tmp_path / "b"))
        assert status == 0, manifest
        # A restore never overwrites a store, e.g. the running server's.
        status, reply = mixhouse("restore", "--from", str(tmp_path / "b"), "--data-dir", str(data_dir))
        assert status == 1
        assert "already holds a store" in reply["error"]
    finally:
        server.stop()
    # A data dir whose catalog is elsewhere (a shared PostgreSQL catalog): said so, with what to do.
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "events.duckdb").write_bytes(b"")
    status, reply = mixhouse("backup", "--data-dir", str(shared), "--to", str(tmp_path / "c"))
    assert status == 1
    assert "shared PostgreSQL catalog" in reply["error"] and "pg_dump" in reply["error"]
    assert not (tmp_path / "c").exists()
    (tmp_path / "b" / "backup.json").unlink()  # as if the backup had been interrupted
    status, reply = mixhouse("restore", "--from", str(tmp_path / "b"), "--data-dir", str(tmp_path / "r"))
    assert status == 1
    assert "not a finished mixhouse backup" in reply["error"]
