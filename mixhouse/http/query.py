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

from mixhouse.domain.auth import Caller
from mixhouse.domain.limits import Api, check_deadline, query_deadline, reply_values_cap
from mixhouse.domain.permissions import Action
from mixhouse.domain.query.context import CsvReply, QueryContext
from mixhouse.http.callers import caller_for
from mixhouse.http.endpoint import Auth, Endpoint
from mixhouse.http.incoming import read_incoming, reject_nul
from mixhouse.http.permissions import authorize
from mixhouse.http.responses import Family, json_response, jsonp, valid_callback
from mixhouse.jql.settings import jql_settings

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
    v2 signature (resolved once per request, mixhouse/http/callers.py)."""
    return caller_for(request, Auth.QUERY, params)


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
            jql_settings(settings),
        ):
            payload = await run_in_threadpool(handler, ctx)
            response = await run_in_threadpool(_render, request, incoming.params, payload)
            check_deadline()  # an answer finished past the deadline is a timeout, not a late 200
        return response

    return endpoint


def query_routes(
    name: str,
    handler: QueryHandler,
    methods: tuple[str, ...] = ("GET", "POST"),
    *,
    action: Action = Action.READ,
    api: Api | None = None,
) -> list[Endpoint]:
    """The endpoint at /api/query/{name} and its legacy alias /api/2.0/{name} (reads, also as POST). Its
    budget is the Query API's (JQL's for /jql: mixhouse.http.routes.BUDGETS) unless `api` says otherwise."""
    wrapped = query_endpoint(handler)
    return [
        Endpoint(
            f"{prefix}/{name}",
            methods,
            wrapped,
            Family.QUERY,
            Auth.QUERY,
            api=api,
            actions=dict.fromkeys(methods, action),
        )
        for prefix in ("/api/query", "/api/2.0")
    ]
