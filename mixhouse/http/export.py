"""GET/POST /api/2.0/export: JSONL streamed from the engine, gzip when the client asks."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mixhouse.domain.auth import authenticate, parse_basic
from mixhouse.domain.export import parse_export_query
from mixhouse.expr import Scope, compile_filter, parse
from mixhouse.http.incoming import read_incoming

GZIP_MIN_BYTES = 1400  # Mixpanel compresses bodies over 1400 bytes when asked to


def _gzip_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = deflater.compress(chunk)
        if out:
            yield out
    yield deflater.flush()


def _lookahead(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first `size` bytes (or all, if fewer) and an iterator over the rest."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) > size:
            break
    return head, chunks


async def export(request: Request) -> Response:
    incoming = await read_incoming(request)
    request.state.params = incoming.params
    caller = authenticate(
        request.app.state.catalog,
        parse_basic(request.headers.get("authorization")),
        incoming.get("project_id"),
    )
    query = parse_export_query(caller.project, incoming.params)
    where_sql = None
    if query.where is not None:
        # Filters read the stored row (alias `e`); datetime("...") is read in the zone dates are read in.
        zone = query.project.timezone if query.shift_to_project_timezone else "UTC"
        where_sql = compile_filter(parse(query.where), Scope.events("e", timezone=zone))
    chunks = request.app.state.engine.export_lines(query, where_sql)
    wants_gzip = "gzip" in (request.headers.get("accept-encoding") or "").lower()
    if not wants_gzip:
        return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")
    head, rest = await run_in_threadpool(_lookahead, chunks, GZIP_MIN_BYTES)
    if len(head) <= GZIP_MIN_BYTES:
        return Response(head, media_type="text/plain; charset=utf-8")

    def body() -> Iterator[bytes]:
        yield head
        yield from rest

    return StreamingResponse(
        _gzip_stream(body()), media_type="text/plain; charset=utf-8", headers={"Content-Encoding": "gzip"}
    )
