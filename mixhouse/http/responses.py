"""Response envelopes. Each API family answers errors in its own Mixpanel format (as each API's page under https://developer.mixpanel.com/reference/overview shows);
this module is the one place that knows them."""

from __future__ import annotations

import re
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mixhouse.errors import MixhouseError, RateLimited

_CALLBACK = re.compile(r"[A-Za-z_$][\w$.]{0,127}")


class Family(StrEnum):
    TRACK = "track"  # /track /engage /groups: 1 / 0, or {"status", "error"} with verbose
    IMPORT = "import"  # /import: {"code", "error", "status"}
    QUERY = "query"  # /api/2.0, /api/query and export: {"request", "error"}
    APP = "app"  # /api/app: {"status": "error", "error"}


class FixedHeaders(tuple[tuple[bytes, bytes], ...]):
    """The headers of a `Fixed` response: a tuple, so that a middleware that adds headers (CORS) makes a new
    sequence rather than change these. The connection (mixhouse/http/protocol.py) keeps their HTTP/1.1 lines
    here once it has rendered them, and writes those lines for every response that sends this very object."""

    lines: bytes | None = None
    content_length: int | None = None


class Fixed(Response):
    """A response made once and sent any number of times (the tracking replies `1` and `0`): its headers
    are made when it is made, not per request, and every send gives the same `FixedHeaders`."""

    def __init__(self, content: bytes, status_code: int = 200, media_type: str | None = None) -> None:
        super().__init__(content, status_code=status_code, media_type=media_type)
        self.fixed_headers = FixedHeaders(self.raw_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.fixed_headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def request_text(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def valid_callback(name: str | None) -> str | None:
    return name if name and _CALLBACK.fullmatch(name) else None


def jsonp(callback: str, payload: Any, status: int = 200) -> Response:
    body = callback.encode() + b"(" + orjson.dumps(payload) + b");"
    return Response(body, status_code=status, media_type="text/javascript")


def error_body(family: Family, request: Request, status: int, message: str) -> Any:
    if family is Family.IMPORT:
        if status == 401:
            message = "Invalid credentials"  # /import's documented 401 body, whatever the detail
        return {"code": status, "error": message, "status": HTTPStatus(status).phrase}
    if family is Family.APP:
        return {"status": "error", "error": message}
    if family is Family.TRACK:
        return {"status": 0, "error": message}
    return {"request": request_text(request), "error": message}


def error_response(
    family: Family, request: Request, exc: MixhouseError, params: dict[str, str] | None = None
) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    params = params or {}
    if family is Family.TRACK:
        verbose = params.get("verbose", "")
        # Mixpanel answers bad tracking data with HTTP 200 and 0; size and rate errors keep their
        # status so that SDKs halve batches (413) and back off (429, 503), and a wrong path or method
        # is not a tracking answer at all (404, 405). verbose=2 asks for real statuses.
        kept = (404, 405, 413, 429, 503)
        status = exc.status if exc.status in kept or verbose == "2" or exc.status >= 500 else 200
        if verbose in ("1", "2", "true"):
            return json_response({"status": 0, "error": str(exc)}, status, headers)
        callback = valid_callback(params.get("callback"))
        if callback:
            return Response(f"{callback}(0);".encode(), status_code=status, media_type="text/javascript")
        return Response(b"0", status_code=status, media_type="text/plain", headers=headers)
    body = error_body(family, request, exc.status, str(exc))
    callback = valid_callback(params.get("callback"))
    if family is Family.QUERY and callback:
        return jsonp(callback, body, exc.status)
    return json_response(body, exc.status, headers)
