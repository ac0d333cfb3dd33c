"""The App API's feature-flag routes, as Mixpanel's feature-flags management API lays them out (and
mixpanel-headless' `mp flags` calls them), under `/api/app/projects/{project_id}/workspaces/{workspace_id}/`
and, equally, directly under the project:

    GET    feature-flags[?include_archived=true]   list (archived left out by default)
    POST   feature-flags                           create
    GET    feature-flags/{flag_id}                 read
    PUT    feature-flags/{flag_id}                 replace (name, key, status, ruleset required)
    PATCH  feature-flags/{flag_id}                 edit the given fields (e.g. {"status": "enabled"})
    DELETE feature-flags/{flag_id}                 delete
    POST   feature-flags/{flag_id}/archive         archive
    DELETE feature-flags/{flag_id}/archive         restore (to disabled)
    PUT    feature-flags/{flag_id}/test-users      QA testers, {"users": {variant key: distinct id}}
    GET    feature-flags/{flag_id}/readout         experiment readout (mixhouse's own; see readout.py)

A project has one workspace, whose id is the project id."""

from __future__ import annotations

from typing import Any

from mixhouse.domain.app_context import AppContext
from mixhouse.domain.project import Role
from mixhouse.errors import Forbidden, NotFound
from mixhouse.flags.model import Status
from mixhouse.flags.service import FlagService


def _service(ctx: AppContext) -> FlagService:
    workspace = ctx.path_params.get("workspace_id")
    if workspace is not None and workspace != str(ctx.project.id):
        raise NotFound(f"Workspace not found for id {workspace}")
    if ctx.method != "GET" and ctx.caller.role not in (Role.OWNER, Role.ADMIN):
        raise Forbidden("changing feature flags needs an owner or admin role")
    return FlagService(ctx.catalog, ctx.project, ctx.caller.username)


def _ok(results: Any) -> dict[str, Any]:
    return {"status": "ok", "results": results}


def collection(ctx: AppContext) -> dict[str, Any]:
    service = _service(ctx)
    if ctx.method == "GET":
        include = ctx.params.get("include_archived", "").lower() in ("1", "true")
        return _ok(service.list_flags(include))
    return _ok(service.create(ctx.body))


def item(ctx: AppContext) -> dict[str, Any]:
    service = _service(ctx)
    flag_id = ctx.path_params["flag_id"]
    if ctx.method == "GET":
        return _ok(service.get(flag_id))
    if ctx.method == "DELETE":
        service.delete(flag_id)
        return _ok({"id": flag_id, "deleted": True})
    return _ok(service.replace(flag_id, ctx.body, partial=ctx.method == "PATCH"))


def archive(ctx: AppContext) -> dict[str, Any]:
    service = _service(ctx)
    flag_id = ctx.path_params["flag_id"]
    if ctx.method == "DELETE" and service.get(flag_id)["status"] != Status.ARCHIVED:
        return _ok(service.get(flag_id))  # restoring a flag that is not archived changes nothing
    return _ok(service.set_status(flag_id, Status.ARCHIVED if ctx.method == "POST" else Status.DISABLED))


def test_users(ctx: AppContext) -> dict[str, Any]:
    return _ok(_service(ctx).set_test_users(ctx.path_params["flag_id"], ctx.body))
