"""The Query API's HTTP side, shared by every endpoint: both path prefixes, GET and POST, parameters
from the query string, a form or a JSON body, credentials (Basic or a v2 signature), JSONP and CSV.

An endpoint is a plain function of a QueryContext that returns the response payload (or a
CsvReply); it runs in a worker thread, so it may block on the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mixhouse.domain.auth import Caller, authenticate_query
from mixhouse.domain.limits import check_deadline, query_deadline, reply_values_cap
from mixhouse.domain.query.context import CsvReply, QueryContext
from mixhouse.errors import MissingParameter
from mixhouse.http.endpoint import endpoint
from mixhouse.http.incoming import read_incoming, reject_nul
from mixhouse.http.permissions import authorize
from mixhouse.http.responses import Family, json_response, jsonp, valid_callback
from mixhouse.web.session_auth import session_caller

QueryHandler = Callable[[QueryContext], Any]


def _render(request: Request, params: dict[str, str], payload: Any) -> Response:
    if isinstance(payload, Response):
        return payload
    if isinstance(payload, CsvReply):
        return Response(payload.text.encode(), media_type="text/csv; charset=utf-8")
    callback = valid_callback(params.get("callback"))
    if callback:
        return jsonp(callback, payload)
    return json_response(payload)


def read_caller(request: Request, params: dict[str, str]) -> Caller:
    """The caller of a read endpoint (Query API or raw export): a web app session, Basic credentials, or a
    v2 signature."""
    session = session_caller(request, params.get("project_id"), "sig" in params or "api_key" in params)
    if session is not None:
        return session
    authorization = request.headers.get("authorization")
    # A v2 request (api_key, no Authorization header) without its signature: v2's own error.
    if "api_key" in params and "sig" not in params and not (authorization or "").strip():
        raise MissingParameter("sig")
    return authenticate_query(request.app.state.catalog, authorization, params)


def query_endpoint(handler: QueryHandler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        incoming = await read_incoming(request)
        request.state.params = incoming.params
        reject_nul(incoming.params)  # also the values a JSON body of parameters carried
        caller = read_caller(request, incoming.params)
        authorize(request, caller)
        ctx = QueryContext(caller, incoming.params, request.app.state.engine, request.app.state.catalog)
        settings = request.app.state.settings
        with (
            query_deadline(settings.query_timeout_seconds, "the server's"),
            reply_values_cap(settings.max_reply_values),
        ):
            payload = await run_in_threadpool(handler, ctx)
            response = await run_in_threadpool(_render, request, incoming.params, payload)
            check_deadline()  # an answer finished past the deadline is a timeout, not a late 200
        return response

    return endpoint


def query_routes(name: str, handler: QueryHandler, methods: tuple[str, ...] = ("GET", "POST")) -> list[Route]:
    """The endpoint at /api/query/{name} and its legacy alias /api/2.0/{name}."""
    wrapped = endpoint(query_endpoint(handler), Family.QUERY)
    return [Route(f"{prefix}/{name}", wrapped, methods=list(methods)) for prefix in ("/api/query", "/api/2.0")]
