"""`GET /flags` and `GET /flags/definitions`: Mixpanel's feature-flag evaluation API, as its SDKs call it.

Credentials, any of: Basic `token:` (mixpanel-browser, PyPI mixpanel without a service account), Basic
`secret:`, Basic service account + `project_id` (PyPI mixpanel with ServiceAccountCredentials), or no
Authorization header and the `token` parameter alone. A `token` parameter that names another project
than the credentials is refused. Errors: `{"error": ..., "status": "error"}` with 400/401/403."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mixhouse.domain.auth import Caller
from mixhouse.flags import service
from mixhouse.http.callers import caller_for
from mixhouse.http.endpoint import Auth
from mixhouse.http.responses import json_response


def _caller(request: Request) -> Caller:
    return caller_for(request, Auth.FLAGS, dict(request.query_params))


async def flags(request: Request) -> Response:
    caller = _caller(request)
    request.state.project_id = caller.project.id  # for the access log
    params = request.query_params
    context = service.parse_context(params.get("context"))
    state = request.app.state
    args = (state.catalog, state.engine, caller.project, context, params.get("flag_key"), state.flag_cohorts)
    if service.needs_engine(state.catalog, caller.project, state.flag_cohorts):
        return json_response(await run_in_threadpool(service.evaluate_flags, *args))
    # Pure computation over cached definitions and cohorts (~10 µs a flag): cheaper than a thread hop.
    return json_response(service.evaluate_flags(*args))


async def definitions(request: Request) -> Response:
    caller = _caller(request)
    request.state.project_id = caller.project.id
    return Response(service.definitions_body(request.app.state.catalog, caller.project), media_type="application/json")
