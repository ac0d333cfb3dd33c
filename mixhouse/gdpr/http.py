"""The GDPR API v3 over HTTP, at Mixpanel's paths (https://docs.mixpanel.com/reference/gdpr-api):

    POST   /api/app/data-retrievals/v3.0?token=           create a retrieval  -> 201 {"task_id"}
    GET    /api/app/data-retrievals/v3.0/{id}?token=      its status and, once ready, the file's URL
    DELETE /api/app/data-retrievals/v3.0/{id}?token=      cancel it (before STARTED)
    GET    /api/app/data-retrievals/v3.0/{id}/file?token= the file (the URL the status gives)
    POST   /api/app/data-deletions/v3.0?token=            create a deletion   -> 201 {"task_id"}
    GET    /api/app/data-deletions/v3.0/{id}?token=       its status
    DELETE /api/app/data-deletions/v3.0/{id}?token=       cancel it: 204, or 405 once STARTED

The project is named by its token (`token=`, as Mixpanel documents) or by `project_id=`; the caller by
`Authorization: Bearer <GDPR OAuth token>` (`mixhouse gdpr-tokens create`), or by Basic credentials of an
owner or admin of the project. Errors use the App API envelope."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from mixhouse.domain.auth import authenticate, parse_basic
from mixhouse.domain.catalog import CatalogPort
from mixhouse.domain.limits import Api
from mixhouse.domain.permissions import Action
from mixhouse.domain.project import Project
from mixhouse.errors import BadRequest, Forbidden, NotFound, Unauthorized
from mixhouse.gdpr import model
from mixhouse.gdpr.kinds import retrieval_file
from mixhouse.gdpr.tokens import GdprTokens
from mixhouse.http.endpoint import Auth, Endpoint
from mixhouse.http.incoming import read_incoming, reject_nul, reject_nul_in_json
from mixhouse.http.permissions import authorize
from mixhouse.http.responses import Family, json_response
from mixhouse.jobs import Job, JobRunner, JobStore

RETRIEVALS = "/api/app/data-retrievals/v3.0"
DELETIONS = "/api/app/data-deletions/v3.0"
NO_CREDENTIALS = "Unable to authenticate request: a GDPR OAuth token is required (Authorization: Bearer <token>)"
BAD_TOKEN = "Unable to authenticate request: invalid or expired GDPR OAuth token"


def _named_project(catalog: CatalogPort, params: dict[str, str]) -> Project | None:
    token = params.get("token")
    if token:
        project = catalog.project_by_token(token)
        if project is None:
            raise Unauthorized(f"Unable to authenticate request: no project has the token {token!r}")
        return project
    raw = params.get("project_id")
    if raw:
        if not (raw.isascii() and raw.isdigit()):
            raise BadRequest(f"Invalid parameter: project_id must be an integer, got {raw!r}")
        project = catalog.project_by_id(int(raw))
        if project is None:
            raise NotFound(f"no project with id {raw}")
        return project
    return None


def _caller(request: Request, params: dict[str, str]) -> tuple[Project, str]:
    """The project and the requesting user, or Unauthorized/Forbidden."""
    catalog: CatalogPort = request.app.state.catalog
    header = (request.headers.get("authorization") or "").strip()
    scheme, _, value = header.partition(" ")
    project = _named_project(catalog, params)
    if scheme.lower() == "bearer" and value.strip():
        grant = GdprTokens(catalog).verify(value.strip())
        if grant is None:
            raise Unauthorized(BAD_TOKEN)
        if project is None:
            project = catalog.project_by_id(grant.project_id)
            if project is None:
                raise Unauthorized(BAD_TOKEN)
        elif project.id != grant.project_id:
            raise Forbidden(f"this GDPR OAuth token is not valid for project {project.id}")
        request.state.project_id = project.id
        return project, grant.user
    if scheme.lower() == "basic":
        project_param = str(project.id) if project is not None else params.get("project_id")
        caller = authenticate(catalog, parse_basic(header), project_param)
        authorize(request, caller)  # owners and admins only (http/permissions.py)
        return caller.project, caller.username or f"project {caller.project.id} secret"
    raise Unauthorized(NO_CREDENTIALS)


async def _params(request: Request) -> tuple[dict[str, str], Any]:
    incoming = await read_incoming(request)
    request.state.params = incoming.params
    reject_nul(incoming.params)
    reject_nul_in_json(incoming.json_body)
    return dict(request.query_params), incoming.json_body


def _job(request: Request, project: Project, kind: str) -> Job | None:
    return JobStore(request.app.state.catalog).get(request.path_params["tracking_id"], kind=kind, project_id=project.id)


def _download_url(request: Request, job: Job) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}{RETRIEVALS}/{job.id}/file?project_id={job.project_id}"


def _create(kind: str, retrieval: bool) -> Any:
    async def create(request: Request) -> Response:
        params, body = await _params(request)
        project, user = _caller(request, params)
        parsed = model.parse_request(body, retrieval=retrieval, max_ids=request.app.state.settings.gdpr_max_ids)
        runner: JobRunner = request.app.state.jobs
        job = await run_in_threadpool(runner.submit, kind, project.id, parsed.payload(user))
        return json_response(model.created(job), 201)

    return create


def _cancel(kind: str) -> Any:
    async def cancel(request: Request) -> Response:
        params, _ = await _params(request)
        project, _user = _caller(request, params)
        job = _job(request, project, kind)
        if job is None:
            raise NotFound(f"no task {request.path_params['tracking_id']!r} in project {project.id}")
        runner: JobRunner = request.app.state.jobs
        await run_in_threadpool(runner.cancel, job)
        return Response(status_code=204)

    return cancel


async def retrieval_status(request: Request) -> Response:
    params, _ = await _params(request)
    project, _user = _caller(request, params)
    job = _job(request, project, model.RETRIEVAL)
    return json_response(model.retrieval_status(job, _download_url(request, job) if job else ""))


async def deletion_status(request: Request) -> Response:
    params, _ = await _params(request)
    project, _user = _caller(request, params)
    job = _job(request, project, model.DELETION)
    return json_response(model.deletion_status(job, request.path_params["tracking_id"], project.id))


async def retrieval_download(request: Request) -> Response:
    params, _ = await _params(request)
    project, _user = _caller(request, params)
    job = _job(request, project, model.RETRIEVAL)
    if job is None or job.state.value != "SUCCESS":
        raise NotFound(f"no finished retrieval {request.path_params['tracking_id']!r} in project {project.id}")
    path = retrieval_file(request.app.state.settings.data_dir, job)
    if not path.is_file():
        raise NotFound(f"the file of retrieval {job.id!r} is no longer there")
    return FileResponse(
        path,
        media_type="application/json",
        filename=f"mixpanel-{job.payload['compliance_type'].lower()}-retrieval-{job.id}.json",
    )


MANAGE = Action.MANAGE  # GDPR requests and what they retrieve: owners and admins only
# (https://docs.mixpanel.com/docs/privacy/end-user-data-management)

ENDPOINTS = [
    Endpoint(RETRIEVALS, ("POST",), _create(model.RETRIEVAL, True), Family.APP, Auth.GDPR, Api.GDPR, {"POST": MANAGE}),
    Endpoint(
        RETRIEVALS + "/{tracking_id}", ("GET",), retrieval_status, Family.APP, Auth.GDPR, Api.GDPR, {"GET": MANAGE}
    ),
    Endpoint(
        RETRIEVALS + "/{tracking_id}",
        ("DELETE",),
        _cancel(model.RETRIEVAL),
        Family.APP,
        Auth.GDPR,
        Api.GDPR,
        {"DELETE": MANAGE},
    ),
    Endpoint(
        RETRIEVALS + "/{tracking_id}/file",
        ("GET",),
        retrieval_download,
        Family.APP,
        Auth.GDPR,
        Api.GDPR,
        {"GET": MANAGE},
    ),
    Endpoint(DELETIONS, ("POST",), _create(model.DELETION, False), Family.APP, Auth.GDPR, Api.GDPR, {"POST": MANAGE}),
    Endpoint(DELETIONS + "/{tracking_id}", ("GET",), deletion_status, Family.APP, Auth.GDPR, Api.GDPR, {"GET": MANAGE}),
    Endpoint(
        DELETIONS + "/{tracking_id}",
        ("DELETE",),
        _cancel(model.DELETION),
        Family.APP,
        Auth.GDPR,
        Api.GDPR,
        {"DELETE": MANAGE},
    ),
]
