"""Warehouse imports over the App API (https://developer.mixpanel.com/reference/warehouse-connectors-api):

    GET    /api/app/projects/{projectId}/warehouse-sources/imports                    every import
    POST   .../warehouse-sources/imports/event-stream | people | groups | lookup-table   create (first run at once)
    GET    .../warehouse-sources/imports/{importId}
    PATCH  .../warehouse-sources/imports/{importId}        {"paused", "run_every"}
    DELETE .../warehouse-sources/imports/{importId}        {"delete_data": true} also deletes its events
    PUT    .../warehouse-sources/imports/{importId}/manual-sync   {"status": "ok", "results": {"run_id"}}
    GET    .../warehouse-sources/imports/{importId}/history       {"status": "ok", "results": {"runs": [...]}}

Mixpanel connects warehouses in its UI; here the App API does (admins and owners), and never shows a
password back:

    POST   /api/app/projects/{projectId}/warehouse-sources    {"type": "postgres", "host", ...}
    GET    /api/app/projects/{projectId}/warehouse-sources
"""

from __future__ import annotations

import math
import time
from typing import Any

from mixhouse.domain.app_context import AppContext
from mixhouse.errors import BadRequest, NotFound, RateLimited, Unavailable
from mixhouse.imports import model
from mixhouse.imports.run import dispatch, events_deleted
from mixhouse.imports.sources import resolve_path
from mixhouse.imports.state import ImportState
from mixhouse.imports.store import ImportStore
from mixhouse.jobs.runner import JobRunner
from mixhouse.settings import Settings

_NOT_FOUND = "Warehouse import {} not found"


def _ok(results: Any) -> dict[str, Any]:
    return {"status": "ok", "results": results}


def _runner(ctx: AppContext) -> JobRunner:
    runner = ctx.extra.get("jobs")
    if runner is None:
        raise Unavailable("the job runner is not running")
    assert isinstance(runner, JobRunner)
    return runner


def _settings(ctx: AppContext) -> Settings:
    settings = ctx.extra["settings"]
    assert isinstance(settings, Settings)
    return settings


def _import(ctx: AppContext) -> model.WarehouseImport:
    import_id = ctx.path_id("import_id", _NOT_FOUND)
    found = ImportStore(ctx.catalog).get(ctx.project.id, import_id)
    if found is None:
        raise NotFound(_NOT_FOUND.format(import_id))
    return found


# -- sources ----------------------------------------------------------------------------------------


def sources(ctx: AppContext) -> dict[str, Any]:
    store = ImportStore(ctx.catalog)
    if ctx.method == "GET":
        return _ok([s.shown() for s in store.sources(ctx.project.id)])
    spec = model.parse_source(ctx.body)
    if spec.type is not model.SourceType.POSTGRES:
        resolve_path(_settings(ctx).warehouse_files_dir, str(spec.params["path"]))  # refused when outside
    return _ok(store.create_source(ctx.project.id, spec).shown())


# -- imports ----------------------------------------------------------------------------------------


def collection(ctx: AppContext) -> dict[str, Any]:
    return _ok([i.shown() for i in ImportStore(ctx.catalog).imports(ctx.project.id)])


def _create(ctx: AppContext, import_type: model.ImportType) -> dict[str, Any]:
    store = ImportStore(ctx.catalog)
    source_id = model.source_id_of(ctx.body)
    source = store.source(ctx.project.id, source_id)
    if source is None:
        raise BadRequest(f"warehouse_source_id {source_id} is not a warehouse source of this project")
    spec = model.parse_create(import_type, ctx.body, source.type)
    if source.type is model.SourceType.PARQUET:
        root = resolve_path(_settings(ctx).warehouse_files_dir, str(source.params["path"]))
        resolve_path(root, str(spec.table_params["table_name"]))
    runner = _runner(ctx)
    created = store.create(ctx.project.id, spec, source.type, None, ctx.caller.username or "project secret")
    dispatch(runner, created)  # the initial load, whatever run_every says; the next run_every after it
    found = store.get(ctx.project.id, created.id)
    assert found is not None
    return _ok(found.shown())


def create_event_stream(ctx: AppContext) -> dict[str, Any]:
    return _create(ctx, model.ImportType.EVENT_STREAM)


def create_people(ctx: AppContext) -> dict[str, Any]:
    return _create(ctx, model.ImportType.PEOPLE)


def create_groups(ctx: AppContext) -> dict[str, Any]:
    return _create(ctx, model.ImportType.GROUPS)


def create_lookup_table(ctx: AppContext) -> dict[str, Any]:
    return _create(ctx, model.ImportType.LOOKUP_TABLE)


def item(ctx: AppContext) -> dict[str, Any]:
    imp = _import(ctx)
    store = ImportStore(ctx.catalog)
    if ctx.method == "GET":
        return _ok(imp.shown())
    if ctx.method == "PATCH":
        patch = model.parse_patch(ctx.body)
        run_every = patch.run_every
        if imp.sync_mode is model.SyncMode.ONE_TIME and run_every:
            raise BadRequest("a one_time import runs once: run_every must be 0")
        store.set_schedule(imp.id, paused=patch.paused, run_every=run_every)
        runner = ctx.extra.get("jobs")
        if isinstance(runner, JobRunner):
            runner.wake()
        found = store.get(ctx.project.id, imp.id)
        assert found is not None
        return _ok(found.shown())
    # DELETE
    delete_data = model.parse_delete(ctx.body)
    store.delete(imp.id)
    state = ImportState(_settings(ctx).data_dir, imp.project_id, imp.id)
    if delete_data and imp.import_type is model.ImportType.EVENT_STREAM:
        hashes = state.load().column("hash").to_pylist()
        ctx.engine.delete_events(ctx.project.id, [h for h in hashes if h])
        runner = ctx.extra.get("jobs")
        if isinstance(runner, JobRunner):
            events_deleted(runner.ctx, ctx.project.id)
    state.drop()
    return {"status": "ok"}


def manual_sync(ctx: AppContext) -> dict[str, Any]:
    imp = _import(ctx)
    store = ImportStore(ctx.catalog)
    if imp.sync_mode is model.SyncMode.ONE_TIME and store.succeeded_once(imp.id):
        raise BadRequest("a one_time import runs once, and this one has run")
    limit = _settings(ctx).warehouse_manual_syncs_per_hour
    if limit:
        now = time.time()
        recent = store.manual_runs_since(imp.id, now - 3600)
        if len(recent) >= limit:
            retry = max(1, math.ceil(recent[-limit] + 3600 - now))
            raise RateLimited(f"manual syncs are limited to {limit} per hour per import", retry_after=retry)
    running = store.running(imp.id)
    if running is not None:
        raise BadRequest(f"a sync of this import is running already (run_id {running.id})")
    run_id = dispatch(_runner(ctx), imp, manual=True)
    if run_id is None:
        raise BadRequest("a sync of this import is running already")
    return _ok({"run_id": run_id})


def history(ctx: AppContext) -> dict[str, Any]:
    imp = _import(ctx)
    return _ok({"runs": [r.shown() for r in ImportStore(ctx.catalog).runs(imp.id)]})
