"""GET/POST /api/2.0/export: JSONL streamed from the engine, gzip when the client asks."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mixhouse.domain.export import parse_export_query
from mixhouse.expr import Scope, compile_filter, parse
from mixhouse.http.incoming import read_incoming, reject_nul
from mixhouse.http.permissions import authorize
from mixhouse.http.query import read_caller


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
    where_sql = None
    if query.where is not None:
        # Filters read the stored row (alias `e`); datetime("...") is read in the zone dates are read in.
        zone = query.project.timezone if query.shift_to_project_timezone else "UTC"
        where_sql = compile_filter(parse(query.where), Scope.events("e", timezone=zone))
    chunks = request.app.state.engine.export_lines(query, where_sql)
    # Mixpanel compresses every export when asked, however small ("This endpoint uses gzip to compress
    # the transfer"); a client that writes the raw stream to a .gz file relies on it.
    if "gzip" not in (request.headers.get("accept-encoding") or "").lower():
        return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")
    return StreamingResponse(
        _gzip_stream(chunks), media_type="text/plain; charset=utf-8", headers={"Content-Encoding": "gzip"}
    )
