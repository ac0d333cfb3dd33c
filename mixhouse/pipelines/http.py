"""The Data Pipelines API over HTTP, at Mixpanel's paths
(https://docs.mixpanel.com/reference/create-warehouse-pipeline), form-encoded, Basic credentials (a service
account and `project_id`, or the project secret):

    POST /api/2.0/nessie/pipeline/create     -> {"pipeline_names": [name]}
    POST /api/2.0/nessie/pipeline/edit       name, events, where          -> {"status": "ok"}
    POST /api/2.0/nessie/pipeline/pause      name                          -> {"status": "ok"}
    POST /api/2.0/nessie/pipeline/resume     name                          -> {"status": "ok"}
    POST /api/2.0/nessie/pipeline/cancel     name (deletes it and its history) -> {"status": "ok"}
    GET  /api/2.0/nessie/pipeline/jobs       -> {"<project_id>": [{"name", "Dispatcher", ...}]}
    GET  /api/2.0/nessie/pipeline/status     name, summary, status -> tasks grouped by state
    GET  /api/2.0/nessie/pipeline/timeline   name -> {"day_syncs": [...]}

Errors: `{"error": ..., "status": "error"}` (the App API envelope)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mixhouse.domain.auth import authenticate, parse_basic
from mixhouse.domain.calendar import today_in
from mixhouse.domain.permissions import Action
from mixhouse.domain.project import Project
from mixhouse.errors import BadRequest, MissingParameter, NotFound
from mixhouse.http.endpoint import Auth, Endpoint
from mixhouse.http.incoming import read_incoming
from mixhouse.http.permissions import authorize
from mixhouse.http.responses import Family, json_response
from mixhouse.pipelines import model
from mixhouse.pipelines.model import Unit
from mixhouse.pipelines.service import SERVICE
from mixhouse.pipelines.store import STATES, Pipeline, PipelineStore, Task

BASE = "/api/2.0/nessie/pipeline"
OK = {"status": "ok"}


async def _call(request: Request) -> tuple[Project, dict[str, str], list[str]]:
    """The project the credentials may act on, the parameters, and every `events` value given."""
    incoming = await read_incoming(request)
    params = incoming.params
    request.state.params = params
    caller = authenticate(
        request.app.state.catalog, parse_basic(request.headers.get("authorization")), params.get("project_id")
    )
    authorize(request, caller)
    events = request.query_params.getlist("events")
    if incoming.form:
        events += [v for k, v in parse_qsl(incoming.body.decode("utf-8"), keep_blank_values=True) if k == "events"]
    elif incoming.json_body is not None and "events" in params:
        events.append(params["events"])
    return caller.project, params, events


def _store(request: Request) -> PipelineStore:
    return PipelineStore(request.app.state.catalog)


def _named(request: Request, project: Project, params: dict[str, str]) -> Pipeline:
    name = (params.get("name") or "").strip()
    if not name:
        raise MissingParameter("name")
    pipeline = _store(request).get(project.id, name)
    if pipeline is None:
        raise NotFound(f"pipeline {name!r} does not exist in project {project.id}")
    return pipeline


def _wake(request: Request) -> None:
    scheduler = request.app.state.jobs.ctx.services.get(SERVICE)
    if scheduler is not None:
        scheduler.wake()


def _limits(request: Request) -> model.Limits:
    settings = request.app.state.settings
    return model.Limits(settings.pipeline_max_backfill_days, settings.pipeline_local_dir is not None)


async def create(request: Request) -> Response:
    project, params, events = await _call(request)
    spec = model.parse_create(params, events, project.timezone, today_in(project.timezone), _limits(request))

    def save() -> Pipeline:
        store = _store(request)
        existing = store.of_project(project.id)
        model.check_room(spec, [p.spec for p in existing])
        name = model.unique_name(spec.base_name(), (p.name for p in existing))
        return store.create(project.id, name, spec)

    pipeline = await run_in_threadpool(save)
    _wake(request)
    return json_response({"pipeline_names": [pipeline.name]})


async def edit(request: Request) -> Response:
    project, params, events = await _call(request)
    pipeline = _named(request, project, params)
    spec = pipeline.spec
    changes: dict[str, Any] = {}
    if events:
        if spec.trial:
            raise BadRequest("Invalid parameter: trial pipelines cannot filter by event name")
        changes["events"] = model.parse_events(events)
    if "where" in params:
        changes["where"] = model.check_where(params["where"], project.timezone)
    if not changes:
        raise BadRequest("Nothing to edit: pass events or where")
    _store(request).update_spec(pipeline.id, replace(spec, **changes))
    return json_response(OK)


def _toggle(paused: bool) -> Any:
    async def handler(request: Request) -> Response:
        project, params, _ = await _call(request)
        pipeline = _named(request, project, params)
        _store(request).set_paused(pipeline.id, paused)
        _wake(request)
        return json_response(OK)

    return handler


async def cancel(request: Request) -> Response:
    project, params, _ = await _call(request)
    pipeline = _named(request, project, params)
    _store(request).cancel(pipeline.id)
    return json_response(OK)


# -- reading ---------------------------------------------------------------------------------------------


def _stamp(epoch: float | None, timezone: str) -> str | None:
    """`2019-02-01 12:00:00 US/Pacific`, as Mixpanel's jobs list shows times."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S ") + timezone


def _sync_time(epoch: float, timezone: str) -> str:
    """`2019-08-19 14:27:46.044605 -0700 PDT`, as Mixpanel's timeline shows sync times."""
    return datetime.fromtimestamp(epoch, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S.%f %z %Z")


async def jobs(request: Request) -> Response:
    project, _params, _ = await _call(request)
    store = _store(request)
    out = []
    now = datetime.now(UTC)
    for p in store.of_project(project.id):
        done = {t.unit for t in store.tasks(p.id) if t.state == "succeeded"}
        owed = [u for u in model.due_units(p.spec, now, project.timezone) if u.key not in done]
        out.append(
            {
                "name": p.name,
                "Dispatcher": "backfill" if len(owed) > 1 else "incremental",
                "last_dispatched": _stamp(p.last_dispatched, project.timezone),
                "frequency": p.spec.frequency,
                "sync_enabled": "true" if p.spec.sync else "false",
                "paused": p.paused,
            }
        )
    return json_response({str(project.id): out})


def _task_json(project: Project, pipeline: Pipeline, task: Task) -> dict[str, Any]:
    start, end = Unit.from_key(task.unit).bounds_ms(project.timezone)
    zone = ZoneInfo(project.timezone)
    return {
        "project_id": project.id,
        "name": pipeline.name,
        "state": task.state,
        "last_finish": _stamp(task.last_finish, project.timezone),
        "run_at": _stamp(task.run_at, project.timezone),
        "from_date": datetime.fromtimestamp(start / 1000, zone).strftime("%Y-%m-%dT%H:%M:%S"),
        "to_date": datetime.fromtimestamp(end / 1000, zone).strftime("%Y-%m-%dT%H:%M:%S"),
        "events": task.events,
        "files": task.files,
        **({"error": task.error} if task.error else {}),
    }


async def status(request: Request) -> Response:
    project, params, _ = await _call(request)
    pipeline = _named(request, project, params)
    wanted = (params.get("status") or "").strip()
    if wanted and wanted not in STATES:
        raise BadRequest(f"Invalid parameter: status must be one of {', '.join(STATES)}, got {wanted!r}")
    summary = (params.get("summary") or "").strip().lower() in ("true", "1")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in _store(request).tasks(pipeline.id):
        if not wanted or task.state == wanted:
            groups[task.state].append(_task_json(project, pipeline, task))
    if summary:
        return json_response({state: len(items) for state, items in groups.items()})
    return json_response(dict(groups))


async def timeline(request: Request) -> Response:
    project, params, _ = await _call(request)
    pipeline = _named(request, project, params)
    days: dict[str, list[Task]] = defaultdict(list)
    for task in _store(request).tasks(pipeline.id):
        days[Unit.from_key(task.unit).day.isoformat()].append(task)
    out = []
    for day, tasks in sorted(days.items()):
        times = sorted(t for task in tasks for t in task.sync_times)
        if all(t.state == "succeeded" for t in tasks):
            state = "synced"
        elif any(t.state == "failed" for t in tasks):
            state = "failed"
        else:
            state = "pending"
        out.append({"date": day, "sync_times": [_sync_time(t, project.timezone) for t in times], "status": state})
    return json_response({"day_syncs": out})


MANAGE = Action.MANAGE
READ = Action.READ


def _row(verb: str, method: str, handler: Any, action: Action) -> Endpoint:
    return Endpoint(f"{BASE}/{verb}", (method,), handler, Family.APP, Auth.PIPELINES, None, {method: action})


ENDPOINTS = [
    _row("create", "POST", create, MANAGE),
    _row("edit", "POST", edit, MANAGE),
    _row("pause", "POST", _toggle(True), MANAGE),
    _row("resume", "POST", _toggle(False), MANAGE),
    _row("cancel", "POST", cancel, MANAGE),
    _row("jobs", "GET", jobs, READ),
    _row("status", "GET", status, READ),
    _row("timeline", "GET", timeline, READ),
]
