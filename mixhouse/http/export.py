"""GET/POST /api/2.0/export: JSONL streamed from the engine, gzip when the client asks.

At most MIXHOUSE_MAX_CONCURRENT_EXPORTS exports stream at once (each holds a bounded window of rows in
the engine); one more waits up to MIXHOUSE_EXPORT_QUEUE_SECONDS for a slot, then gets 503 with
Retry-After. A slot is held until the last byte is sent or the client goes away. A failure after the
first byte breaks the stream visibly: the connection is closed without the terminating chunk (and
without the gzip trailer), so no client can take a cut export for a whole one.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from mixhouse.domain.export import ExportQuery, parse_export_query
from mixhouse.errors import RateLimited
from mixhouse.http.incoming import read_incoming, reject_nul
from mixhouse.http.permissions import authorize
from mixhouse.http.query import read_caller

DEFAULT_MAX_CONCURRENT_EXPORTS = 8
DEFAULT_EXPORT_QUEUE_SECONDS = 30.0

log = logging.getLogger(__name__)


class ExportsBusy(RateLimited):
    """Every export slot is taken: retryable (503 with Retry-After)."""

    status = 503
    code = "exports_busy"


class ExportSlots:
    def __init__(
        self, capacity: int = DEFAULT_MAX_CONCURRENT_EXPORTS, wait_seconds: float = DEFAULT_EXPORT_QUEUE_SECONDS
    ) -> None:
        self.capacity = capacity
        self.wait_seconds = wait_seconds
        self._semaphore = asyncio.Semaphore(self.capacity)

    async def acquire(self) -> None:
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self.wait_seconds)
        except TimeoutError as exc:
            raise ExportsBusy(
                f"Too many concurrent exports: at most {self.capacity} at once; retry later", retry_after=5
            ) from exc

    def release(self) -> None:
        self._semaphore.release()


def _slots(request: Request) -> ExportSlots:
    slots: ExportSlots | None = getattr(request.app.state, "export_slots", None)
    if slots is None:
        settings = request.app.state.settings
        slots = ExportSlots(settings.max_concurrent_exports, settings.export_queue_seconds)
        request.app.state.export_slots = slots
    return slots


class _SlotResponse(Response):
    """Runs the wrapped response and frees the export slot however it ends (sent, failed, client gone)."""

    def __init__(self, inner: Response, slots: ExportSlots) -> None:
        self.inner = inner
        self.slots = slots
        self.background = None
        self.status_code = inner.status_code

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.slots.release()


def _logged(chunks: Iterator[bytes], path: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except Exception as exc:
        # Re-raised: the server closes the connection mid-body, which the client sees as a broken stream.
        log.error("export of %s failed mid-stream; the response is cut off: %s", path, str(exc).splitlines()[0][:300])
        raise


def _gzip_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = deflater.compress(chunk)
        if out:
            yield out
    yield deflater.flush()


async def export(request: Request) -> Response:
    incoming = await read_incoming(request)
    request.state.params = incoming.params
    reject_nul(incoming.params)
    caller = read_caller(request, incoming.params)
    authorize(request, caller)
    query = parse_export_query(caller.project, incoming.params)
    slots = _slots(request)
    await slots.acquire()
    try:
        response = await _stream(request, query)
    except BaseException:
        slots.release()
        raise
    return _SlotResponse(response, slots)


async def _stream(request: Request, query: ExportQuery) -> Response:
    chunks = _logged(request.app.state.engine.export_lines(query), request.url.path)
    # Mixpanel compresses every export when asked, however small ("This endpoint uses gzip to compress
    # the transfer"); a client that writes the raw stream to a .gz file relies on it.
    if "gzip" not in (request.headers.get("accept-encoding") or "").lower():
        return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")
    return StreamingResponse(
        _gzip_stream(chunks), media_type="text/plain; charset=utf-8", headers={"Content-Encoding": "gzip"}
    )
