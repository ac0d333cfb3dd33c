"""The tracking endpoints' short way through the server (docs/ingestion.md, "The /track fast path"):
`Direct` handlers that speak ASGI themselves, `DirectRoutes` handing them requests past the layers that
would only pass them on, prebuilt `1`/`0` replies, and one write per response (`OneWriteCycle`). What a
client sees must be what it saw before, byte for byte: these tests read raw HTTP over loopback."""

from __future__ import annotations

import base64
import socket
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from starlette.responses import Response
from starlette.routing import Route

from mixhouse.http.endpoint import DirectEndpoint
from mixhouse.http.ingest import ONE
from mixhouse.http.middleware import DirectRoutes
from mixhouse.http.responses import Fixed
from mixhouse.http.routes import ENDPOINTS, budget_of, routes
from tests.conftest import export
from tests.server import TOKEN, ServerProcess

# Sends events stamped now (/track refuses events older than five days): also run at other hours.
pytestmark = pytest.mark.clock


def _event(name: str) -> bytes:
    payload = {"event": name, "properties": {"token": TOKEN, "distinct_id": "u-direct", "time": int(time.time())}}
    return urlencode({"data": base64.b64encode(orjson.dumps(payload)).decode()}).encode()


def _request(method: str, path: str, body: bytes = b"", *, version: str = "1.1", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/{version}\r\nHost: 127.0.0.1\r\n{extra}"
    if body or method == "POST":
        head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def _read_response(
    sock: socket.socket, buffered: bytearray, *, head_only: bool = False
) -> tuple[str, list[str], bytes]:
    """One response from `sock` (status line, header lines in order, body), by its Content-Length."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {bytes(buffered)!r}"
        buffered += chunk
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    length = (
        0 if head_only else next(int(v) for k, _, v in (ln.partition(": ") for ln in lines) if k == "content-length")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    buffered[:] = rest[length:]
    return status, lines, rest[:length]


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


@pytest.mark.parametrize("path", ["/track", "/engage", "/groups"])
def test_the_plain_replies_are_the_bytes_they_were(server: ServerProcess, path: str) -> None:
    """200, `1` or `0`, text/plain with its charset, the server's date and name first: what Starlette's
    Response made, now made once at start-up. Two requests on one keep-alive connection."""
    with _connect(server) as sock:
        buffered = bytearray()
        sock.sendall(_request("POST", path, _event(f"direct-{uuid.uuid4().hex[:8]}")))
        status, lines, body = _read_response(sock, buffered)
        assert status == "HTTP/1.1 200 OK"
        assert [ln.split(": ")[0] for ln in lines] == ["date", "server", "content-length", "content-type"]
        assert lines[1:] == ["server: uvicorn", "content-length: 1", "content-type: text/plain; charset=utf-8"]
        assert body == (b"1" if path == "/track" else b"0")  # a profile update needs $distinct_id and an op
        sock.sendall(_request("POST", path, b"data=not-json"))
        status, lines, body = _read_response(sock, buffered)
        assert (status, body) == ("HTTP/1.1 200 OK", b"0")
        assert lines[2:] == ["content-length: 1", "content-type: text/plain; charset=utf-8"]
        assert buffered == b""


def test_tracked_events_are_stored(server: ServerProcess) -> None:
    name = f"direct-{uuid.uuid4().hex[:8]}"
    with _connect(server) as sock:
        buffered = bytearray()
        for _ in range(3):
            sock.sendall(_request("POST", "/track/", _event(name)))  # the trailing slash of mixpanel-browser
            assert _read_response(sock, buffered)[2] == b"1"
    assert [e["event"] for e in export(server.url, event=orjson.dumps([name]).decode())] == [name] * 3


def test_pipelined_requests_and_head_get_whole_answers(server: ServerProcess) -> None:
    """Three requests written at once are answered in order, each head with its own body; HEAD gets the
    head alone (no stray body byte left to be read as the next response)."""
    name = f"direct-{uuid.uuid4().hex[:8]}"
    with _connect(server) as sock:
        buffered = bytearray()
        sock.sendall(
            _request("POST", "/track", _event(name)) + _request("HEAD", "/track") + _request("GET", "/healthz")
        )
        assert _read_response(sock, buffered)[2] == b"1"
        status, lines, _ = _read_response(sock, buffered, head_only=True)
        assert status == "HTTP/1.1 200 OK" and "content-length: 1" in lines
        status, _, body = _read_response(sock, buffered)
        assert (status, body) == ("HTTP/1.1 200 OK", b"ok")
        assert buffered == b""


def test_http_1_0_gets_its_answer_then_the_connection_closes(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(_request("POST", "/track", _event(f"direct-{uuid.uuid4().hex[:8]}"), version="1.0"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"\r\nconnection: close" in head
    assert body == b"1"


def test_methods_the_route_does_not_take_still_get_the_routers_405(server: ServerProcess) -> None:
    response = httpx.put(f"{server.url}/track", content=_event("x"))
    assert (response.status_code, response.text) == (405, "0")  # the tracking envelope, status kept


def test_a_browser_request_gets_its_cors_headers_on_the_direct_way(server: ServerProcess) -> None:
    origin = "https://app.example.com"
    with _connect(server) as sock:
        buffered = bytearray()
        sock.sendall(
            _request("POST", "/track", _event(f"direct-{uuid.uuid4().hex[:8]}"), extra=f"Origin: {origin}\r\n")
        )
        status, lines, body = _read_response(sock, buffered)
    assert (status, body) == ("HTTP/1.1 200 OK", b"1")
    assert lines[2:] == [
        "content-length: 1",
        "content-type: text/plain; charset=utf-8",
        f"access-control-allow-origin: {origin}",
        "access-control-allow-credentials: true",
        "vary: Origin",
    ]


def _write_syscalls(pid: int) -> int:
    """The process's write-like system calls so far (`syscw` of /proc/PID/io: write, writev, ...)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/PID/io")


def test_a_response_leaves_in_one_write(server: ServerProcess) -> None:
    """uvicorn writes a response's head and body separately; here a response of known length is one
    write. Counted on the server process: per GET /healthz, the response and its access-log line."""
    assert server.proc is not None
    requests = 60
    with _connect(server) as sock:
        buffered = bytearray()
        sock.sendall(_request("GET", "/healthz"))
        _read_response(sock, buffered)
        before = _write_syscalls(server.proc.pid)
        for _ in range(requests):
            sock.sendall(_request("GET", "/healthz"))
            assert _read_response(sock, buffered)[2] == b"ok"
        after = _write_syscalls(server.proc.pid)
    # 2 per request (3 with a separate head); a few to spare for the server's other threads.
    assert (after - before) / requests < 2.4


def test_direct_routes_are_the_tables_direct_endpoints_that_spend_no_budget() -> None:
    """The short way covers exactly the routes whose handlers are Direct and which the rate limiter would
    pass untouched; /import (a budget of its own) and the Request handlers keep the whole stack."""
    table = routes()
    direct = DirectRoutes(app=_never, routes=table).direct
    assert sorted(direct) == ["/engage", "/groups", "/track"]
    for path, route in direct.items():
        assert isinstance(route, Route) and isinstance(route.app, DirectEndpoint)
        assert budget_of(path) is None
    assert {e.path for e in ENDPOINTS if e.path in direct} == set(direct)


async def _never(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


class _Recording:
    """What a cycle writes to its connection (the transport's part of the interface uvicorn's cycle uses)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("method", ["POST", "HEAD"])
@pytest.mark.parametrize(
    "reply",
    [ONE, Fixed(b"oops", status_code=400, media_type="text/plain"), Response(b'{"a": 1}', headers={"X-A": "b"})],
)
def test_the_short_sends_write_what_uvicorns_send_writes(
    keep_alive: bool, method: str, reply: Response, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`OneWriteCycle` writes a `Fixed` head and a response's one body itself: the same bytes, the same
    state after, as uvicorn's own `send` (which writes head and body apart), in one write."""
    import asyncio
    import logging

    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from mixhouse.http.protocol import OneWriteCycle

    async def run(kind: type[RequestResponseCycle]) -> tuple[_Recording, RequestResponseCycle, int]:
        transport = _Recording()
        completed = []
        cycle = kind(
            scope={"type": "http", "method": method, "path": "/track"},  # type: ignore[typeddict-item]
            transport=transport,  # type: ignore[arg-type]
            flow=FlowControl(transport),  # type: ignore[arg-type]
            logger=logging.getLogger("test"),
            access_logger=logging.getLogger("test.access"),
            access_log=False,
            default_headers=[(b"date", b"Mon, 07 Dec 2026 00:00:00 GMT"), (b"server", b"uvicorn")],
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=keep_alive,
            on_response=lambda: completed.append(1),
        )
        await reply({"type": "http"}, _never, cycle.send)  # type: ignore[arg-type]
        return transport, cycle, len(completed)

    uvicorns: list[str] = []  # the messages OneWriteCycle left to uvicorn's send
    uvicorn_send = RequestResponseCycle.send

    async def counted(self: RequestResponseCycle, message: Any) -> None:
        if isinstance(self, OneWriteCycle):
            uvicorns.append(message["type"].rsplit(".", 1)[1])
        await uvicorn_send(self, message)

    monkeypatch.setattr(RequestResponseCycle, "send", counted)
    ours, our_cycle, our_completed = asyncio.run(run(OneWriteCycle))
    if method == "HEAD":
        assert uvicorns == ["start", "body"]
    else:
        assert uvicorns == ([] if isinstance(reply, Fixed) else ["start"])
    theirs, their_cycle, their_completed = asyncio.run(run(RequestResponseCycle))
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert len(ours.writes) == 1 and len(theirs.writes) == (1 if method == "HEAD" else 2)  # HEAD: no body
    assert (ours.closed, our_completed) == (theirs.closed, their_completed) == (not keep_alive, 1)
    for state in ("response_started", "response_complete", "chunked_encoding", "expected_content_length"):
        assert getattr(our_cycle, state) == getattr(their_cycle, state), state
    assert our_cycle.message_event.is_set() and their_cycle.message_event.is_set()
