"""The HTTP/1.1 connection, guarded: uvicorn's httptools protocol with limits on what a client may make
the server hold before the application sees a request.

- The request target is capped (`MIXHOUSE_MAX_URL_BYTES`, 414) and so are the header lines together
  (`MIXHOUSE_MAX_HEADER_BYTES`, 431). The count is kept as bytes arrive, so a 200 MB header is refused
  after the first few kilobytes instead of being buffered whole (httptools joins a header's pieces
  before it calls back, with no limit of its own).
- A request's head must arrive within `MIXHOUSE_HEADER_TIMEOUT_SECONDS` of the connection opening or the
  previous response ending, and its body within `MIXHOUSE_BODY_TIMEOUT_SECONDS` of the head: past that
  the server answers 408 and closes the connection (slowloris and slow-body clients).
- Concurrent connections past `MIXHOUSE_MAX_CONNECTIONS` get uvicorn's 503 (`limit_concurrency`), and an
  idle keep-alive connection is closed after `MIXHOUSE_KEEP_ALIVE_SECONDS`.

Refusals are written here, in the API family's error format, before any application code runs.

A response of known length leaves in one write: its head is held until the first part of its body and
both go to the socket together (`OneWriteCycle`), one send(2) and one packet where uvicorn makes two.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from mixhouse.http.responses import Family, FixedHeaders
from mixhouse.http.routes import family_of
from mixhouse.settings import Settings

# A request line or header block of a few KB is normal; a long GET /track?data=... or a query with a long
# `where` reaches tens of KB. These defaults leave room for those and refuse anything near megabytes.
DEFAULT_MAX_URL_BYTES = 64 * 1024
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_BODY_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_KEEP_ALIVE_SECONDS = 5.0


@dataclass(frozen=True)
class EdgeLimits:
    max_url_bytes: int = DEFAULT_MAX_URL_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keep_alive_seconds: float = DEFAULT_KEEP_ALIVE_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(
            max_url_bytes=settings.max_url_bytes,
            max_header_bytes=settings.max_header_bytes,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
            max_connections=settings.max_connections,
            keep_alive_seconds=settings.keep_alive_seconds,
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """The settings uvicorn applies itself."""
        return {
            "http": guarded_protocol(self),
            # uvicorn answers 503 once the open connections, the asking one included, reach its limit.
            "limit_concurrency": self.max_connections + 1,
            "timeout_keep_alive": self.keep_alive_seconds,
            # Used when httptools is missing and uvicorn falls back to h11: the same head cap.
            "h11_max_incomplete_event_size": self.max_url_bytes + self.max_header_bytes,
        }


def refusal(status: int, message: str, path: str) -> bytes:
    """A whole HTTP/1.1 response, closing the connection, in the family's error format."""
    family = family_of(path)
    if family is Family.TRACK:
        body, media = b"0", b"text/plain"  # tracking answers 0; size errors keep their status (SDKs read it)
    else:
        payload: Any
        if family is Family.IMPORT:
            payload = {"code": status, "error": message, "status": HTTPStatus(status).phrase}
        elif family is Family.APP:
            payload = {"status": "error", "error": message}
        else:
            payload = {"request": path, "error": message}
        body, media = orjson.dumps(payload), b"application/json"
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
        + b"content-type: "
        + media
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
    )
    return head + body


class _Refused(Exception):
    pass


class _Captured:
    """Stands in for the transport while uvicorn's cycle handles one message: keeps what it writes."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed or self.transport.is_closing()


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, but the head of a response that declares its length is written
    with the first part of its body: one send(2) per small response instead of two, and one wake-up of
    the client instead of two. On /track, where a response is a 1-byte body, the second write was about
    a tenth of the event loop's time. A response without a length (streamed, chunked) sends its head at
    once, as before.

    Two cases skip uvicorn's `send`, doing what it does with the same bytes (tests/test_direct_routes.py
    reads them raw): the head of a `Fixed` reply (its header lines rendered once, not checked and joined
    per request) and the one body of a response of known length. Anything else (HEAD, a paused or closed
    connection, uvicorn's own access log, a streamed body) goes through uvicorn's `send`."""

    held = b""  # the head, waiting for the body

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = message.get("headers")
            if type(headers) is FixedHeaders and self._start_fixed(message["status"], headers):
                return
        elif kind == "http.response.body" and self._last_body(message):
            return
        transport = self.transport
        captured = _Captured(transport)
        self.transport = captured  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        data = self.held + b"".join(captured.chunks)
        if kind == "http.response.start" and self.chunked_encoding is False and not captured.closed:
            self.held = data
            return
        self.held = b""
        if data and not transport.is_closing():
            transport.write(data)
        if captured.closed:
            transport.close()

    def _plain(self) -> bool:
        """Nothing of what uvicorn's `send` checks for besides the message itself is in the way."""
        return (
            not self.disconnected
            and not self.flow.write_paused
            and not self.access_log
            and self.scope["method"] != "HEAD"
        )

    def _start_fixed(self, status: int, headers: FixedHeaders) -> bool:
        """uvicorn's `send` of a response's start, for a `Fixed` reply: the head held for the body."""
        if self.response_started or self.chunked_encoding is not None or status not in STATUS_LINE:
            return False
        if not self._plain():
            return False
        lines = headers.lines if headers.lines is not None else _render(headers)
        defaults = _default_lines(self.default_headers)
        if lines is None or headers.content_length is None or defaults is None:
            return False
        self.response_started = True
        self.waiting_for_100_continue = False
        self.expected_content_length = headers.content_length
        self.chunked_encoding = False
        close = b"" if self.keep_alive else b"connection: close\r\n"
        self.held = STATUS_LINE[status] + defaults + lines + close + b"\r\n"
        return True

    def _last_body(self, message: Any) -> bool:
        """uvicorn's `send` of the one body of a response of known length, written with its held head."""
        if not self.response_started or self.response_complete or self.chunked_encoding is not False:
            return False
        if message.get("more_body", False) or not self._plain():
            return False
        body = message.get("body", b"")
        if len(body) != self.expected_content_length:
            return False  # uvicorn's send raises its error
        self.expected_content_length = 0
        data, self.held = self.held + body, b""
        if not self.transport.is_closing():
            self.transport.write(data)
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
        return True


def _lines(headers: Any) -> tuple[bytes, int | None] | None:
    """HTTP/1.1 header lines as uvicorn's `send` writes them, and the content-length among them; None for
    headers it would refuse or that change how the response is framed (connection, transfer-encoding)."""
    out: list[bytes] = []
    length: int | None = None
    for name, value in headers:
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            return None
        name = name.lower()
        if name in (b"connection", b"transfer-encoding"):
            return None
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        out.append(name + b": " + value + b"\r\n")
    return b"".join(out), length


def _render(headers: FixedHeaders) -> bytes | None:
    rendered = _lines(headers)
    if rendered is None:
        return None
    headers.lines, headers.content_length = rendered
    return headers.lines


# uvicorn's default headers (date, server) are a new list when the date changes, every second: rendered
# once per list, which is kept here (so that its identity cannot be taken by another list).
_defaults: tuple[object, bytes | None] = (None, None)


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    global _defaults
    kept, lines = _defaults
    if kept is not headers:
        rendered = _lines(headers)
        lines = rendered[0] if rendered is not None and rendered[1] is None else None
        _defaults = (headers, lines)
    return lines


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits = EdgeLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between the start of a request and the end of its headers
        self._head_bytes = 0
        self._refusal: bytes | None = None
        self._head_deadline: float | None = None  # on the loop's clock (loop.time())
        self._body_deadline: float | None = None
        self._idle_deadline: float | None = None  # keep-alive: closed when no byte arrives before it
        self._watch: asyncio.TimerHandle | None = None  # fires at the earliest deadline, or before it
        self._watch_at = 0.0
        self.url = b""

    # -- timers -------------------------------------------------------------------------------------
    # Each request sets a deadline for its body and, once answered, one for the next head and uvicorn's
    # keep-alive one: a float each. One timer per connection watches them (armed at the earliest, armed again
    # when it fires before a deadline that moved), instead of a timer made and cancelled for each deadline
    # (three per request, ~2 us each on the event loop, where a /track request costs ~150 us in all).

    def _arm_head_timer(self) -> None:
        self._head_deadline = self.loop.time() + self.limits.header_timeout_seconds
        self._watch_until(self._head_deadline)

    def _cancel_head_timer(self) -> None:
        self._head_deadline = None

    def _arm_body_timer(self) -> None:
        self._body_deadline = self.loop.time() + self.limits.body_timeout_seconds
        self._watch_until(self._body_deadline)

    def _cancel_body_timer(self) -> None:
        self._body_deadline = None

    def _watch_until(self, deadline: float) -> None:
        if self._watch is not None:
            if self._watch_at <= deadline:
                return  # it fires first and arms itself again for this deadline
            self._watch.cancel()
        self._watch = self.loop.call_at(deadline, self._deadlines_due)
        self._watch_at = deadline

    def _deadlines_due(self) -> None:
        self._watch = None
        now = self.loop.time()
        if self._head_deadline is not None and now >= self._head_deadline:
            self._head_deadline = None
            self._head_timed_out()
        if self._body_deadline is not None and now >= self._body_deadline:
            self._body_deadline = None
            self._body_timed_out()
        if self._idle_deadline is not None and now >= self._idle_deadline:
            self._idle_deadline = None
            self.timeout_keep_alive_handler()
        pending = [d for d in (self._head_deadline, self._body_deadline, self._idle_deadline) if d is not None]
        if pending and not self.transport.is_closing():
            self._watch_until(min(pending))

    def _head_timed_out(self) -> None:
        if self._head_bytes == 0:  # nothing of a next request arrived: an idle connection, just close it
            self.transport.close()
            return
        seconds = self.limits.header_timeout_seconds
        self._refuse(408, f"the request headers did not arrive within {seconds:g} s", self._path())

    def _body_timed_out(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.more_body:
            return
        started = cycle.response_started
        # The application sees a disconnect (it is reading the body) and writes nothing more.
        cycle.disconnected = True
        cycle.message_event.set()
        if not started:
            seconds = self.limits.body_timeout_seconds
            path = self.scope.get("path", "") if self.scope else ""
            self.transport.write(refusal(408, f"the request body did not arrive within {seconds:g} s", path))
        self.transport.close()

    # -- refusals -----------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str, path: str) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        if not self.transport.is_closing():
            self.transport.write(refusal(status, message, path))
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for any parser error, including the _Refused our callbacks raise.
        if self._refusal is not None:
            self._cancel_head_timer()
            self.transport.write(self._refusal)
            self.transport.close()
            return
        super().send_400_response(msg)

    def _path(self) -> str:
        return self.url.split(b"?", 1)[0][:512].decode("latin-1")

    def _too_long(self, status: int, message: str) -> None:
        """Refuse from inside a parser callback: httptools turns the exception into a parser error,
        and uvicorn answers that through send_400_response, which writes this refusal instead."""
        self._refusal = refusal(status, message, self._path())
        raise _Refused(message)

    # -- uvicorn's protocol hooks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after this chunk: every byte counted so far belongs to the request line or
        # the headers, which are not passed on (and so not checked) until they are complete.
        head_cap = self.limits.max_url_bytes + self.limits.max_header_bytes + 1024
        if self._in_head and self._refusal is None and self._head_bytes > head_cap and not self.transport.is_closing():
            if len(self.url) > self.limits.max_url_bytes:
                self._refuse(414, f"the request URL is longer than {self.limits.max_url_bytes} bytes", self._path())
            else:
                message = f"the request headers are larger than {self.limits.max_header_bytes} bytes"
                self._refuse(431, message, self._path())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._too_long(414, f"the request URL is longer than {self.limits.max_url_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        header_bytes = sum(len(name) + len(value) + 4 for name, value in self.headers)
        if header_bytes > self.limits.max_header_bytes:
            self._too_long(431, f"the request headers are larger than {self.limits.max_header_bytes} bytes")
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous and type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = OneWriteCycle  # (its task has not run yet: it sends through OneWriteCycle)
        self._head_bytes = 0
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, but its keep-alive timeout is a deadline of the watch rather than a timer of its own.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_deadline = self.loop.time() + self.timeout_keep_alive
            self._watch_until(self._idle_deadline)
        if not self.pipeline:
            self._arm_head_timer()

    def _unset_keepalive_if_required(self) -> None:
        self._idle_deadline = None
        super()._unset_keepalive_if_required()


def guarded_protocol(limits: EdgeLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to these limits."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


__all__ = ["EdgeLimits", "GuardedHttpToolsProtocol", "guarded_protocol", "refusal"]
