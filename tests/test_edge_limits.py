"""Limits at the connection (mixhouse/http/protocol.py), over real sockets on loopback against a real
server: URL and header caps at their edge (414, 431), slowloris and slow-body clients timed out (408),
a client hanging up mid-upload logged as one line, and the connection cap (503)."""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from tests.server import PROJECT_ID, SECRET, ServerProcess, seed_catalog

MAX_URL = 4096
MAX_HEADERS = 8192
HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 8
KEEP_ALIVE = 1.0


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("edge") / "data"
    seed_catalog(data_dir)
    env = {
        "MIXHOUSE_MAX_URL_BYTES": str(MAX_URL),
        "MIXHOUSE_MAX_HEADER_BYTES": str(MAX_HEADERS),
        "MIXHOUSE_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "MIXHOUSE_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "MIXHOUSE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "MIXHOUSE_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
    }
    server = ServerProcess(data_dir, env=env).start()
    yield server
    server.stop()


def connect(server: ServerProcess, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


def read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server still takes (it may refuse and close half way)."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def exchange(server: ServerProcess, data: bytes) -> bytes:
    with connect(server) as sock:
        send_quietly(sock, data)
        return read_all(sock)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def get_with_target(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def target_of_length(path: bytes, length: int) -> bytes:
    target = path + b"?pad="
    return target + b"a" * (length - len(target))


# -- URL and header size -------------------------------------------------------------------------------


def test_a_url_at_the_cap_is_served_and_one_byte_more_is_414(edge: ServerProcess) -> None:
    at_cap = exchange(edge, get_with_target(target_of_length(b"/healthz", MAX_URL)))
    assert status_of(at_cap) == 200
    over = exchange(edge, get_with_target(target_of_length(b"/api/2.0/segmentation", MAX_URL + 1)))
    assert status_of(over) == 414
    assert orjson.loads(body_of(over)) == {
        "request": "/api/2.0/segmentation",
        "error": f"the request URL is longer than {MAX_URL} bytes",
    }


def head_with_header_bytes(path: bytes, total: int) -> bytes:
    """A request whose header lines add up to exactly `total` bytes (name + value + 4 for ": " and CRLF)."""
    fixed = [(b"host", b"x"), (b"connection", b"close")]
    used = sum(len(n) + len(v) + 4 for n, v in fixed)
    pad_name = b"x-pad"
    pad_value = b"v" * (total - used - len(pad_name) - 4)
    lines = b"".join(n + b": " + v + b"\r\n" for n, v in [*fixed, (pad_name, pad_value)])
    return b"GET " + path + b" HTTP/1.1\r\n" + lines + b"\r\n"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            b"/import",
            {
                "code": 431,
                "error": f"the request headers are larger than {MAX_HEADERS} bytes",
                "status": "Request Header Fields Too Large",
            },
        ),
        (
            b"/api/app/projects/4242/funnels",
            {"status": "error", "error": f"the request headers are larger than {MAX_HEADERS} bytes"},
        ),
        (
            b"/api/2.0/export",
            {"request": "/api/2.0/export", "error": f"the request headers are larger than {MAX_HEADERS} bytes"},
        ),
    ],
)
def test_headers_at_the_cap_are_served_and_one_byte_more_is_431(
    edge: ServerProcess, path: bytes, body: dict[str, object]
) -> None:
    at_cap = exchange(edge, head_with_header_bytes(b"/healthz", MAX_HEADERS))
    assert status_of(at_cap) == 200, at_cap
    over = exchange(edge, head_with_header_bytes(path, MAX_HEADERS + 1))
    assert status_of(over) == 431
    assert orjson.loads(body_of(over)) == body


def test_track_answers_0_with_the_status_for_oversized_headers(edge: ServerProcess) -> None:
    over = exchange(edge, head_with_header_bytes(b"/track", MAX_HEADERS + 1))
    assert status_of(over) == 431 and body_of(over) == b"0"


def test_a_huge_header_is_refused_before_it_is_buffered(edge: ServerProcess) -> None:
    """The review sent a 200 MB header and the server took it all (+379 MB). Now the refusal comes after
    the first kilobytes, the connection closes, and the server's memory does not grow with the header."""
    rss_before = psutil.Process(edge.proc.pid).memory_info().rss if edge.proc else 0
    chunk = b"a" * (1024 * 1024)
    sent = 0
    with connect(edge) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
        try:
            for _ in range(64):  # up to 64 MB
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_all(sock)
    assert response == b"" or status_of(response) == 431
    assert sent < 64 * len(chunk), "the server kept reading a 64 MB header"
    rss_after = psutil.Process(edge.proc.pid).memory_info().rss if edge.proc else 0
    assert rss_after - rss_before < 32 * 1024 * 1024
    started = time.perf_counter()
    assert httpx.get(edge.url + "/healthz").status_code == 200
    assert time.perf_counter() - started < 1


# -- slow clients ---------------------------------------------------------------------------------------


def test_slowloris_connections_get_408_and_are_closed(edge: ServerProcess) -> None:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(connect(edge)) for _ in range(4)]
        _slowloris(socks)


def _slowloris(socks: list[socket.socket]) -> None:
    started = time.monotonic()
    for sock in socks:
        sock.sendall(b"GET /api/2.0/export HTTP/1.1\r\n")
    # One header line every 0.3 s: each line arrives well within any per-read timeout, the head never ends.
    while time.monotonic() - started < HEAD_TIMEOUT + 0.5:
        for sock in socks:
            send_quietly(sock, b"X-Slow: 1\r\n")
        time.sleep(0.3)
    for sock in socks:
        response = read_all(sock)
        sock.close()
        assert status_of(response) == 408
        assert orjson.loads(body_of(response)) == {
            "request": "/api/2.0/export",
            "error": f"the request headers did not arrive within {HEAD_TIMEOUT:g} s",
        }
    assert time.monotonic() - started < HEAD_TIMEOUT + 3


def test_an_idle_connection_is_closed(edge: ServerProcess) -> None:
    with connect(edge) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""  # closed without a byte
        assert time.monotonic() - started < HEAD_TIMEOUT + 2


def test_a_slow_body_gets_408_and_the_data_is_not_stored(edge: ServerProcess) -> None:
    body = orjson.dumps(
        [{"event": "slow-body", "properties": {"time": 1_700_000_000, "distinct_id": "u", "$insert_id": "slowbody1"}}]
    )
    with connect(edge) as sock:
        started = time.monotonic()
        head = (
            f"POST /import?project_id={PROJECT_ID}&strict=1 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Basic {base64.b64encode(f'{SECRET}:'.encode()).decode()}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head)
        for i in range(len(body) - 1):  # one byte every 0.2 s, never the last one
            if time.monotonic() - started > BODY_TIMEOUT + 1:
                break
            send_quietly(sock, body[i : i + 1])
            time.sleep(0.2)
        response = read_all(sock)
    assert status_of(response) == 408
    assert orjson.loads(body_of(response))["error"] == f"the request body did not arrive within {BODY_TIMEOUT:g} s"
    assert time.monotonic() - started < BODY_TIMEOUT + 2


def test_a_client_hanging_up_mid_upload_is_one_log_line(edge: ServerProcess) -> None:
    before = edge.log_path.read_text()
    with connect(edge) as sock:
        sock.sendall(
            b"POST /track HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100000\r\n\r\ndata=%5B"
        )
        time.sleep(0.3)
    time.sleep(0.5)
    new = edge.log_path.read_text()[len(before) :]
    assert "Traceback" not in new and "unhandled error" not in new
    assert new.count("client closed the connection during POST /track") == 1
    access = [orjson.loads(line) for line in new.splitlines() if line.startswith("{")]
    assert [(a["path"], a["status"]) for a in access] == [("/track", 499)]


# -- connection cap ---------------------------------------------------------------------------------------


def test_connections_past_the_cap_get_503_until_slow_ones_time_out(edge: ServerProcess) -> None:
    with contextlib.ExitStack() as stack:
        hogs = [stack.enter_context(connect(edge)) for _ in range(MAX_CONNECTIONS - 1)]
        _hog(edge, stack, hogs)


def _hog(edge: ServerProcess, stack: contextlib.ExitStack, hogs: list[socket.socket]) -> None:
    for sock in hogs:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head that never ends
    time.sleep(0.2)
    assert status_of(exchange(edge, get_with_target(b"/healthz"))) == 200  # the last connection allowed
    hogs.append(stack.enter_context(connect(edge)))
    hogs[-1].sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(0.2)
    refused = exchange(edge, get_with_target(b"/healthz"))
    assert status_of(refused) == 503
    time.sleep(HEAD_TIMEOUT + 0.5)  # the hogs are timed out and closed
    for sock in hogs:
        sock.close()
    assert status_of(exchange(edge, get_with_target(b"/healthz"))) == 200


def test_the_defaults_are_documented() -> None:
    from mixhouse.http import protocol

    ops = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    for setting, default in [
        ("MIXHOUSE_MAX_URL_BYTES", protocol.DEFAULT_MAX_URL_BYTES),
        ("MIXHOUSE_MAX_HEADER_BYTES", protocol.DEFAULT_MAX_HEADER_BYTES),
        ("MIXHOUSE_HEADER_TIMEOUT_SECONDS", protocol.DEFAULT_HEADER_TIMEOUT_SECONDS),
        ("MIXHOUSE_BODY_TIMEOUT_SECONDS", protocol.DEFAULT_BODY_TIMEOUT_SECONDS),
        ("MIXHOUSE_MAX_CONNECTIONS", protocol.DEFAULT_MAX_CONNECTIONS),
        ("MIXHOUSE_KEEP_ALIVE_SECONDS", protocol.DEFAULT_KEEP_ALIVE_SECONDS),
    ]:
        assert f"`{setting}` (default {default:g})" in ops, setting


def test_every_setting_the_server_reads_is_documented() -> None:
    """Every MIXHOUSE_* environment setting in the package is described in docs/ (the limits of the
    server itself in operations.md)."""
    import re

    root = Path(__file__).parent.parent
    used = {
        name for path in (root / "mixhouse").rglob("*.py") for name in re.findall(r"MIXHOUSE_[A-Z_]+", path.read_text())
    }
    docs = "".join(path.read_text() for path in (root / "docs").glob("*.md"))
    ops = (root / "docs" / "operations.md").read_text()
    assert used >= {"MIXHOUSE_MAX_URL_BYTES", "MIXHOUSE_MEMORY_LIMIT", "MIXHOUSE_MAX_REPLY_VALUES"}
    assert sorted(name for name in used if name not in docs) == []
    for name in ("MIXHOUSE_MAX_CONNECTIONS", "MIXHOUSE_QUERY_TIMEOUT_SECONDS", "MIXHOUSE_MAX_CONCURRENT_EXPORTS"):
        assert name in ops
