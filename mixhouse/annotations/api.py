"""Annotations over HTTP: the App API (`/api/app/projects/{projectId}/annotations[/tags]`) and the legacy
Query API family (`/api/2.0/annotations[/create|/update|/delete]`). Handlers take the request's context
and return the whole payload; the HTTP layer authenticates, authorizes and renders errors."""

from __future__ import annotations

from typing import Any

from mixhouse.annotations.model import (
    app_shape,
    body_object,
    day_range,
    legacy_shape,
    parse_description,
    parse_moment,
    parse_tag_filter,
    parse_tag_ids,
    parse_tag_name,
    tag_shape,
)
from mixhouse.annotations.store import AnnotationStore
from mixhouse.domain.app_context import AppContext
from mixhouse.domain.query.context import QueryContext
from mixhouse.errors import BadRequest, MissingParameter, NotFound

_CREATE_FIELDS = frozenset({"date", "description", "tags", "user_id"})
_PATCH_FIELDS = frozenset({"date", "description", "tags"})
_NOT_FOUND = "no annotation with id {} in this project"


def _ok(results: Any) -> dict[str, Any]:
    return {"status": "ok", "results": results}


# --- App API ---------------------------------------------------------------------------------------


def app_list(ctx: AppContext) -> dict[str, Any]:
    """GET ?fromDate=&toDate= (whole days, inclusive; from_date/to_date are accepted too) &tags=1,2."""
    start, end = day_range(
        ctx.params.get("fromDate", ctx.params.get("from_date")),
        ctx.params.get("toDate", ctx.params.get("to_date")),
        ("fromDate", "toDate"),
    )
    wanted = parse_tag_filter(ctx.params.get("tags"))
    annotations = AnnotationStore(ctx.catalog).in_range(ctx.project.id, start, end)
    if wanted is not None:
        annotations = [a for a in annotations if wanted & {t.id for t in a.tags}]
    return _ok([app_shape(a) for a in annotations])


def app_create(ctx: AppContext) -> dict[str, Any]:
    body = body_object(ctx.body, _CREATE_FIELDS)
    if "date" not in body:
        raise MissingParameter("date")
    if "description" not in body:
        raise MissingParameter("description")
    user_id = body.get("user_id")
    if user_id is not None and (not isinstance(user_id, int) or isinstance(user_id, bool)):
        raise BadRequest("user_id must be an integer")  # accepted, not stored: the creator is the caller
    store = AnnotationStore(ctx.catalog)
    annotation_id = store.create(
        ctx.project.id,
        parse_moment(body["date"]),
        parse_description(body["description"]),
        ctx.caller.username,
        parse_tag_ids(body.get("tags", [])),
    )
    created = store.get(ctx.project.id, annotation_id)
    assert created is not None
    return _ok(app_shape(created))


def app_item(ctx: AppContext) -> dict[str, Any]:
    annotation_id = ctx.path_id("annotation_id", _NOT_FOUND)
    store = AnnotationStore(ctx.catalog)
    project_id = ctx.project.id
    if ctx.method == "DELETE":
        if not store.delete(project_id, annotation_id):
            raise NotFound(_NOT_FOUND.format(annotation_id))
        return _ok({"id": annotation_id})
    if ctx.method in ("PATCH", "PUT"):
        body = body_object(ctx.body, _PATCH_FIELDS)
        changed = store.update(
            project_id,
            annotation_id,
            date=parse_moment(body["date"]) if "date" in body else None,
            description=parse_description(body["description"]) if "description" in body else None,
            tag_ids=parse_tag_ids(body["tags"]) if "tags" in body else None,
        )
        if not changed:
            raise NotFound(_NOT_FOUND.format(annotation_id))
    annotation = store.get(project_id, annotation_id)
    if annotation is None:
        raise NotFound(_NOT_FOUND.format(annotation_id))
    return _ok(app_shape(annotation))


def app_tags(ctx: AppContext) -> dict[str, Any]:
    return _ok([tag_shape(t) for t in AnnotationStore(ctx.catalog).tags(ctx.project.id)])


def app_create_tag(ctx: AppContext) -> dict[str, Any]:
    body = body_object(ctx.body, frozenset({"name"}))
    if "name" not in body:
        raise MissingParameter("name")
    return _ok(tag_shape(AnnotationStore(ctx.catalog).create_tag(ctx.project.id, parse_tag_name(body["name"]))))


# --- legacy /api/2.0/annotations -------------------------------------------------------------------


def _legacy_id(ctx: QueryContext) -> int:
    raw = ctx.params.get("id")
    if raw is None or raw == "":
        raise MissingParameter("id")
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"id must be an integer annotation id, got {raw!r}")
    return int(raw)


def legacy_list(ctx: QueryContext) -> dict[str, Any]:
    start, end = day_range(ctx.params.get("from_date"), ctx.params.get("to_date"), ("from_date", "to_date"))
    annotations = AnnotationStore(ctx.catalog).in_range(ctx.project.id, start, end)
    return {"annotations": [legacy_shape(a) for a in annotations], "error": False}


def legacy_create(ctx: QueryContext) -> dict[str, Any]:
    for name in ("date", "description"):
        if not ctx.params.get(name):
            raise MissingParameter(name)
    store = AnnotationStore(ctx.catalog)
    annotation_id = store.create(
        ctx.project.id,
        parse_moment(ctx.params["date"]),
        parse_description(ctx.params["description"]),
        ctx.caller.username,
        [],
    )
    created = store.get(ctx.project.id, annotation_id)
    assert created is not None
    return {"annotation": legacy_shape(created), "error": False}


def legacy_update(ctx: QueryContext) -> dict[str, Any]:
    annotation_id = _legacy_id(ctx)
    date, description = ctx.params.get("date"), ctx.params.get("description")
    if date is None and description is None:
        raise MissingParameter("date")
    store = AnnotationStore(ctx.catalog)
    changed = store.update(
        ctx.project.id,
        annotation_id,
        date=parse_moment(date) if date is not None else None,
        description=parse_description(description) if description is not None else None,
    )
    updated = store.get(ctx.project.id, annotation_id) if changed else None
    if updated is None:
        raise NotFound(_NOT_FOUND.format(annotation_id))
    return {"annotation": legacy_shape(updated), "error": False}


def legacy_delete(ctx: QueryContext) -> dict[str, Any]:
    annotation_id = _legacy_id(ctx)
    if not AnnotationStore(ctx.catalog).delete(ctx.project.id, annotation_id):
        raise NotFound(_NOT_FOUND.format(annotation_id))
    return {"error": False}
