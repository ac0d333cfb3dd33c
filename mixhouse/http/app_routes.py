"""The App API's HTTP side (`/api/app/projects/{projectId}/...`): the project comes from the path,
credentials are a service account (or the project secret), errors and successes use the App
envelope `{"status": "error", "error": ...}` / `{"status": "ok", "results": ...}`.

A handler is a plain function of an AppContext returning the whole response payload (or a
Response); it runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mixhouse.domain.app_context import AppContext
from mixhouse.domain.limits import Api
from mixhouse.domain.permissions import Action
from mixhouse.http.callers import caller_for
from mixhouse.http.endpoint import Auth, Endpoint
from mixhouse.http.incoming import read_incoming, reject_nul, reject_nul_in_json
from mixhouse.http.permissions import authorize
from mixhouse.http.responses import Family, json_response

AppHandler = Callable[[AppContext], Any]


def app_endpoint(handler: AppHandler, *, status: int = 200) -> Callable[[Request], Any]:
    async def run(request: Request) -> Response:
        incoming = await read_incoming(request)
        request.state.params = incoming.params
        reject_nul(incoming.params)
        reject_nul_in_json(incoming.json_body)
        path_params = {k: str(v) for k, v in request.path_params.items()}
        caller = caller_for(request, Auth.APP, incoming.params, path_params.get("project_id"))
        authorize(request, caller)
        ctx = AppContext(
            caller=caller,
            method=request.method,
            path_params=path_params,
            params=dict(request.query_params) | incoming.form,
            body=incoming.json_body,
            engine=request.app.state.engine,
            catalog=request.app.state.catalog,
            extra={"settings": request.app.state.settings, "jobs": getattr(request.app.state, "jobs", None)},
        )
        payload = await run_in_threadpool(handler, ctx)
        if isinstance(payload, Response):
            return payload
        return json_response(payload, status)

    return run


def app_route(
    path: str,
    handler: AppHandler,
    methods: list[str],
    *,
    status: int = 200,
    writes: Action = Action.MANAGE,
    api: Api | None = None,
) -> Endpoint:
    """`path` is relative to /api/app/projects/{project_id}, e.g. "/funnels/{funnel_id}". Reads (GET) are
    Action.READ, the other methods `writes` (MANAGE unless the route says otherwise: only admins and
    owners)."""
    return Endpoint(
        "/api/app/projects/{project_id}" + path,
        tuple(methods),
        app_endpoint(handler, status=status),
        Family.APP,
        Auth.APP,
        api=api,
        actions={m: Action.READ if m in ("GET", "HEAD") else writes for m in methods},
    )
