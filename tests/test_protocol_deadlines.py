"""The connection's deadlines (mixhouse/http/protocol.py): the head, body and keep-alive timeouts are
numbers watched by one timer per connection, not timers made and cancelled per request. The protocol runs
here in process on a real event loop, fed bytes as uvicorn's server feeds them, with a transport that
records what it writes (the timeouts over real sockets: tests/test_edge_limits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from mixhouse.http.protocol import EdgeLimits, GuardedHttpToolsProtocol, guarded_protocol

REQUEST = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"


class _Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _connection(keep_alive: float, head_timeout: float) -> tuple[GuardedHttpToolsProtocol, _Transport]:
    config = Config(app=_ok, timeout_keep_alive=keep_alive, lifespan="off", log_level="warning")
    config.load()
    protocol_class = guarded_protocol(EdgeLimits(header_timeout_seconds=head_timeout, keep_alive_seconds=keep_alive))
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop())
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def test_an_idle_keep_alive_connection_closes_at_its_deadline_and_a_new_request_moves_it() -> None:
    async def run() -> None:
        protocol, transport = _connection(keep_alive=0.5, head_timeout=30)
        protocol.data_received(REQUEST)
        await asyncio.sleep(0.3)
        assert transport.written.count(b"HTTP/1.1 200 OK") == 1 and not transport.closed
        protocol.data_received(REQUEST)  # 0.3 s into the first 0.5 s: the deadline starts again after it
        await asyncio.sleep(0.35)
        assert transport.written.count(b"HTTP/1.1 200 OK") == 2 and not transport.closed
        await asyncio.sleep(0.6)
        assert transport.closed  # by the keep-alive deadline, long before the 30 s head timeout
        protocol.connection_lost(None)

    asyncio.run(run())


def test_requests_on_a_connection_make_no_timer_each() -> None:
    """uvicorn's keep-alive and the head and body timeouts made and cancelled three timers per request;
    now the connection's one watch is armed once and fires only when a deadline may be due."""

    async def run() -> int:
        loop = asyncio.get_running_loop()
        made = 0
        call_at, call_later = loop.call_at, loop.call_later

        def counted_at(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            nonlocal made
            made += 1
            return call_at(*args, **kwargs)

        def counted_later(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            nonlocal made
            made += 1
            return call_later(*args, **kwargs)

        loop.call_at, loop.call_later = counted_at, counted_later  # type: ignore[method-assign]
        protocol, transport = _connection(keep_alive=5, head_timeout=10)
        for _ in range(50):
            protocol.data_received(REQUEST)
            for _ in range(5):  # the request's task runs and answers
                await asyncio.sleep(0)
        assert transport.written.count(b"HTTP/1.1 200 OK") == 50 and not transport.closed
        protocol.connection_lost(None)
        return made

    assert asyncio.run(run()) <= 2
