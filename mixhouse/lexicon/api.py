"""The Lexicon Schemas API (https://developer.mixpanel.com/reference/lexicon-schemas-api) over the App
API's context: `/api/app/projects/{projectId}/schemas[/{entityType}[/{name}]]`.

    GET    /schemas                      {"results": [SchemaEntry...], "status": "ok"}
    POST   /schemas                      {"entries": [...], "truncate": false} -> {"results": {"added", "deleted"}, "status": "ok"}
                                         (with "entityType": X, truncate deletes only schemas of type X)
    DELETE /schemas                      {"results": {"delete_count": n}, "status": "ok"}
    GET    /schemas/{entityType}         list of that type; with ?entity_name=NAME the one schema (as below)
    DELETE /schemas/{entityType}         delete_count
    GET    /schemas/{entityType}/{name}  {"results": Schema, "status": "ok"}
    POST   /schemas/{entityType}/{name}  body Schema, create or replace -> {"status": "ok"}
    DELETE /schemas/{entityType}/{name}  delete_count
    PATCH  /schemas/{entityType}/{name}  body a partial Schema merged into the stored one (RFC 7396)
                                         -> {"results": merged Schema, "status": "ok"}; 404 when none
    PATCH  /schemas                      {"entries": [...]} -> {"results": [{"entityType", "name",
                                         "status": "ok"|"error", "error"?}], "status": "ok"}

Limits (https://docs.mixpanel.com/reference/limits): the request rate is the `lexicon` rate limit of the
project's setting (docs/operations.md); the events and properties written per minute and the schemas
deleted or truncated per request are checked here (settings `lexicon_items_per_minute`,
`lexicon_deletions_per_request`). A refused request changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from mixhouse.domain.app_context import AppContext
from mixhouse.errors import BadRequest, NotFound, RateLimited
from mixhouse.lexicon.model import (
    PatchEntry,
    SchemaEntry,
    parse_bulk,
    parse_entity_type,
    parse_name,
    parse_patch_bulk,
    parse_patch_entry,
    validate_schema,
)
from mixhouse.lexicon.store import SchemaStore
from mixhouse.settings import Settings

_WINDOW_SECONDS = 60.0


def _limits(ctx: AppContext) -> tuple[int, int]:
    """(events and properties per minute, deletions per request) from the server's settings (0: no limit)."""
    settings = ctx.extra.get("settings")
    if settings is None:  # a context made outside the server: Mixpanel's limits
        return Settings().lexicon_items_per_minute, Settings().lexicon_deletions_per_request
    return int(settings.lexicon_items_per_minute), int(settings.lexicon_deletions_per_request)


class ItemsPerMinute:
    """Events and properties written per project in a rolling minute (per server process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[int, deque[tuple[float, int]]] = {}

    def take(self, project_id: int, items: int, limit: int) -> None:
        """Count `items` against the project's minute, or raise (counting nothing)."""
        if limit <= 0 or items == 0:
            return
        if items > limit:
            raise BadRequest(
                f"this request updates {items} events and properties; at most {limit} per minute (send smaller batches)"
            )
        now = time.monotonic()
        with self._lock:
            window = self._written.setdefault(project_id, deque())
            while window and now - window[0][0] > _WINDOW_SECONDS:
                window.popleft()
            used = sum(n for _, n in window)
            if used + items > limit:
                retry = max(1, int(_WINDOW_SECONDS - (now - window[0][0])) + 1)
                raise RateLimited(
                    f"Rate limit exceeded: at most {limit} Lexicon events and properties updated per minute per project",
                    retry_after=retry,
                )
            window.append((now, items))


_ITEMS = ItemsPerMinute()


def _ok(results: Any = None) -> dict[str, Any]:
    return {"status": "ok"} if results is None else {"results": results, "status": "ok"}


def _deleted(count: int) -> dict[str, Any]:
    # `delete_count` is the documented key; mixpanel-headless reads `deleteCount`: both are sent.
    return _ok({"delete_count": count, "deleteCount": count})


def _check_deletions(ctx: AppContext, count: int) -> None:
    limit = _limits(ctx)[1]
    if limit and count > limit:
        raise BadRequest(
            f"this request would delete {count} schemas; at most {limit} truncations/deletions per request "
            "(delete by entity type or by name first)"
        )


def _write(
    ctx: AppContext, entries: list[SchemaEntry], truncate: bool = False, truncate_type: str | None = None
) -> tuple[int, int]:
    store = SchemaStore(ctx.catalog)
    if truncate:
        _check_deletions(ctx, store.count(ctx.project.id, truncate_type))
    _ITEMS.take(ctx.project.id, sum(e.items for e in entries), _limits(ctx)[0])
    return store.write(ctx.project.id, entries, truncate=truncate, truncate_type=truncate_type)


def collection(ctx: AppContext) -> dict[str, Any]:
    """GET, POST (bulk create/replace, optional truncate), PATCH (bulk merge) and DELETE (all) on /schemas."""
    store = SchemaStore(ctx.catalog)
    project_id = ctx.project.id
    if ctx.method == "GET":
        return _ok([e.as_json() for e in store.list(project_id)])
    if ctx.method == "DELETE":
        _check_deletions(ctx, store.count(project_id))
        return _deleted(store.delete(project_id))
    if ctx.method == "PATCH":
        return _ok(_patch_bulk(ctx))
    request = parse_bulk(ctx.body)
    added, deleted = _write(ctx, request.entries, request.truncate, request.truncate_type)
    return _ok({"added": added, "deleted": deleted})


def _patch_bulk(ctx: AppContext) -> list[dict[str, Any]]:
    """Each entry merged on its own: one that names no schema or would leave it invalid reports its error
    and changes nothing; the others are stored together (mixpanel-headless reads one result an entry)."""
    raw = parse_patch_bulk(ctx.body)
    results: list[dict[str, Any] | None] = []
    patches: list[PatchEntry] = []
    for i, value in enumerate(raw):
        try:
            patches.append(parse_patch_entry(value, f"entries[{i}]"))
            results.append(None)
        except BadRequest as exc:
            entity_type = value.get("entityType") if isinstance(value, dict) else None
            name = value.get("name") if isinstance(value, dict) else None
            results.append({"entityType": entity_type, "name": name, "status": "error", "error": exc.message})
    seen: set[tuple[str, str]] = set()
    for p in patches:
        if (p.entity_type, p.name) in seen:
            raise BadRequest(f"entries: {p.entity_type} {p.name!r} appears twice in this request")
        seen.add((p.entity_type, p.name))
    _ITEMS.take(ctx.project.id, sum(p.items for p in patches), _limits(ctx)[0])
    outcomes = iter(SchemaStore(ctx.catalog).patch(ctx.project.id, patches))
    out = []
    for result in results:
        if result is None:
            p, _, error = next(outcomes)
            result = {"entityType": p.entity_type, "name": p.name, "status": "ok" if error is None else "error"}
            if error is not None:
                result["error"] = error
        out.append(result)
    return out


def _entity_type(ctx: AppContext) -> str:
    raw = ctx.path_params.get("entity_type", "")
    try:
        return parse_entity_type(raw)
    except BadRequest as exc:
        raise NotFound(f"unknown entity type {raw!r}: one of event, custom_event, profile") from exc


def _one(ctx: AppContext, entity_type: str, name: str) -> dict[str, Any]:
    entry = SchemaStore(ctx.catalog).get(ctx.project.id, entity_type, name)
    if entry is None:
        raise NotFound(f"no {entity_type} schema named {name!r} in this project")
    return _ok(entry.schema)


def by_type(ctx: AppContext) -> dict[str, Any]:
    """GET (list, or one with ?entity_name=) and DELETE on /schemas/{entityType}."""
    entity_type = _entity_type(ctx)
    store = SchemaStore(ctx.catalog)
    project_id = ctx.project.id
    if ctx.method == "DELETE":
        _check_deletions(ctx, store.count(project_id, entity_type))
        return _deleted(store.delete(project_id, entity_type))
    name = ctx.params.get("entity_name")
    if name is not None:
        return _one(ctx, entity_type, parse_name(name, "entity_name"))
    return _ok([e.as_json() for e in store.list(project_id, entity_type)])


def item(ctx: AppContext) -> dict[str, Any]:
    """GET, POST (create or replace), PATCH (merge) and DELETE on /schemas/{entityType}/{name}."""
    entity_type = _entity_type(ctx)
    name = parse_name(ctx.path_params.get("name", ""))
    if ctx.method == "GET":
        return _one(ctx, entity_type, name)
    if ctx.method == "DELETE":
        return _deleted(SchemaStore(ctx.catalog).delete(ctx.project.id, entity_type, name))
    if ctx.method == "PATCH":
        if not isinstance(ctx.body, dict):
            raise BadRequest("the request body must be the part of the schema to change (a JSON object)")
        patch = PatchEntry(entity_type, name, ctx.body)
        _ITEMS.take(ctx.project.id, patch.items, _limits(ctx)[0])
        ((_, merged, error),) = SchemaStore(ctx.catalog).patch(ctx.project.id, [patch])
        if merged is None:
            assert error is not None
            if SchemaStore(ctx.catalog).get(ctx.project.id, entity_type, name) is None:
                raise NotFound(error)
            raise BadRequest(error)
        return _ok(merged.schema)
    if ctx.body is None:
        raise BadRequest("the request body must be the schema (a JSON object)")
    entry = SchemaEntry(entity_type, name, validate_schema(ctx.body, entity_type))
    _write(ctx, [entry])
    return _ok()
