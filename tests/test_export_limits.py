"""Exports under load (docs/export.md): a bounded number stream at once, one more waits briefly and is
then refused with a retryable 503 and Retry-After, a slot is freed when its client goes away, and an
export that fails after its first byte is visibly broken (no terminating chunk), never a short 200 that
looks whole. The review saw 50 concurrent exports run the engine out of memory: 16 answered 500 or were
cut after a 200."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import SECRET, ServerProcess, seed_catalog

PAD = "z" * 1000
DATES = {"from_date": "2023-11-14", "to_date": "2023-11-15"}
IDENTITY = {"Accept-Encoding": "identity"}


def load(server: ServerProcess, batches: int) -> None:
    with httpx.Client(base_url=server.url, auth=(SECRET, ""), timeout=120) as http:
        http.post(
            "/import",
            json=[{"event": "first", "properties": {"time": 1_700_000_000, "distinct_id": "a", "$insert_id": "f0"}}],
        ).raise_for_status()
        for b in range(batches):
            events = [
                {
                    "event": "big",
                    "properties": {
                        "time": 1_700_010_000 + (b * 1000 + i) % 3000,
                        "distinct_id": f"u{i}",
                        "$insert_id": f"b{b}-{i}",
                        "pad": PAD,
                    },
                }
                for i in range(1000)
            ]
            http.post("/import", json=events).raise_for_status()


@pytest.fixture(scope="module")
def two_slots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("export-slots") / "data"
    seed_catalog(data_dir)
    env = {"MIXHOUSE_MAX_CONCURRENT_EXPORTS": "2", "MIXHOUSE_EXPORT_QUEUE_SECONDS": "1"}
    proc = ServerProcess(data_dir, env=env).start()
    load(proc, 40)  # ~42 MB of export: more than socket buffers hold, so an unread export keeps its slot
    yield proc
    proc.stop()


def open_export(server: ServerProcess) -> socket.socket:
    """An export whose client reads its first bytes and then nothing: a small receive buffer, so the
    server's sends block and the export keeps its slot (as a slow client's would)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    auth = base64.b64encode(f"{SECRET}:".encode()).decode()
    sock.sendall(
        f"GET /api/2.0/export?from_date={DATES['from_date']}&to_date={DATES['to_date']} HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: Basic {auth}\r\n\r\n".encode()
    )
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    return sock


def test_exports_past_capacity_are_refused_with_a_retryable_503(two_slots: ServerProcess) -> None:
    held = [open_export(two_slots), open_export(two_slots)]
    try:
        started = time.monotonic()
        refused = httpx.get(f"{two_slots.url}/api/2.0/export", params=DATES, auth=(SECRET, ""), timeout=60)
        assert refused.status_code == 503
        assert time.monotonic() - started >= 0.9  # it waited in the queue first
        assert refused.headers["Retry-After"] == "5"
        assert refused.json() == {
            "request": "/api/2.0/export?from_date=2023-11-14&to_date=2023-11-15",
            "error": "Too many concurrent exports: at most 2 at once; retry later",
        }
    finally:
        for sock in held:
            sock.close()
    # The slots of clients that went away are free again; a whole export goes through.
    deadline = time.monotonic() + 10
    while True:
        full = httpx.get(f"{two_slots.url}/api/2.0/export", params=DATES, auth=(SECRET, ""), timeout=60)
        if full.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert full.status_code == 200
    assert len(full.content.splitlines()) == 40_001


def test_a_waiting_export_gets_the_slot_a_finished_one_frees(two_slots: ServerProcess) -> None:
    with open_export(two_slots):
        small = httpx.get(
            f"{two_slots.url}/api/2.0/export",
            params={**DATES, "event": '["first"]'},
            auth=(SECRET, ""),
            timeout=60,
        )
        assert small.status_code == 200 and len(small.content.splitlines()) == 1


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    assert done.returncode == 0, f"this test needs to mount a tmpfs (root): {done.stderr.decode()}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_an_export_failing_mid_stream_is_visibly_broken(tmpfs: Path) -> None:
    """A real failure after the first byte: the engine's memory is capped at 10 MB and its spill folder's
    disk is full, so sorting the second window (30 MB of events in one hour) fails."""
    data_dir = tmpfs / "data"
    seed_catalog(data_dir)
    # DuckDB's own 16 MB checkpoint threshold: with the default (256 MiB) the 30 MB loaded stay in the WAL,
    # whose checkpoint room (twice the WAL) a 64 MB disk cannot keep, so the load itself would be refused.
    env = {
        "MIXHOUSE_DISK_RESERVE_BYTES": "0",
        "MIXHOUSE_MEMORY_LIMIT": "10MB",
        "MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES": str(16 * 1024 * 1024),
    }
    server = ServerProcess(data_dir, env=env)
    server.log_path = tmpfs.parent / "server.log"
    server.start()
    try:
        load(server, 30)
        ballast = tmpfs / "ballast"
        with open(ballast, "wb") as f:
            f.write(b"\0" * (shutil.disk_usage(tmpfs).free - 64 * 1024))
        received = b""
        with (
            httpx.Client(auth=(SECRET, ""), timeout=60) as http,
            http.stream("GET", f"{server.url}/api/2.0/export", params=DATES, headers=IDENTITY) as response,
        ):
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in response.iter_bytes():
                    received += chunk
        assert len(received) < 30 * 1024 * 1024  # headers said 200, then the body broke off
        assert "failed mid-stream; the response is cut off" in server.log_path.read_text()
        # Gzipped, the same: the gzip stream ends without its trailer and HTTP without its last chunk.
        with (
            httpx.Client(auth=(SECRET, ""), timeout=60) as http,
            http.stream("GET", f"{server.url}/api/2.0/export", params=DATES) as gzipped,
        ):
            assert gzipped.status_code == 200 and gzipped.headers["Content-Encoding"] == "gzip"
            with pytest.raises((httpx.RemoteProtocolError, httpx.DecodingError)):
                for _ in gzipped.iter_bytes():
                    pass
        ballast.unlink()
    finally:
        server.stop()
