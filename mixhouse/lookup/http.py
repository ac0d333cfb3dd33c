"""Lookup tables over HTTP.

Mixpanel's API (https://docs.mixpanel.com/reference/replace-lookup-table), a service account (or the
project secret) and `project_id=`:

    GET /lookup-tables?project_id=        {"code": 200, "status": "OK", "results": [{"id", "name"}]}
    PUT /lookup-tables/{id}?project_id=   text/csv (Content-Encoding: gzip allowed): replace it all

Mixpanel creates tables in its UI only; here the App API does (admins and owners):

    POST   /api/app/projects/{project_id}/lookup-tables               {"name": ...} -> 201 the table
    GET    /api/app/projects/{project_id}/lookup-tables               every table of the project
    GET    /api/app/projects/{project_id}/lookup-tables/{table_id}    the table and its typed rows
    DELETE /api/app/projects/{project_id}/lookup-tables/{table_id}
    GET|PUT /api/app/projects/{project_id}/lookup-tables/{table_id}/mappings   the properties it enriches
"""

from __future__ import annotations

import math
import time
import zlib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mixhouse.domain.app_context import AppContext
from mixhouse.domain.auth import authenticate, parse_basic
from mixhouse.domain.permissions import Action
from mixhouse.errors import BadRequest, MissingParameter, NotFound, PayloadTooLarge, RateLimited
from mixhouse.http.app_routes import app_route
from mixhouse.http.endpoint import Auth, Endpoint
from mixhouse.http.incoming import read_raw_body
from mixhouse.http.permissions import authorize
from mixhouse.http.responses import Family, json_response
from mixhouse.lookup import csvtable
from mixhouse.lookup.store import MAX_NAME_CHARS, LookupStore, LookupTable

VALIDATION_FAILED = "Some data points in the request failed validation"
ROWS_PAGE = 10_000


def max_bytes(request: Request) -> int:
    """The lookup_max_bytes setting: the largest upload, uncompressed (Mixpanel: 100 MB)."""
    return int(request.app.state.settings.lookup_max_bytes)


def replaces_per_day(request: Request) -> int:
    """The lookup_replaces_per_day setting: replace calls a project may make in a rolling 24 hours (Mixpanel: 100)."""
    return int(request.app.state.settings.lookup_replaces_per_day)


def max_project_rows(request: Request) -> int:
    """The lookup_max_project_rows setting: rows of all a project's tables together (Mixpanel: 5 million)."""
    return int(request.app.state.settings.lookup_max_project_rows)


def _not_found(table_id: str) -> NotFound:
    return NotFound(f"Lookup table with id '{table_id}' was not found.")


def _project(request: Request) -> int:
    caller = authenticate(
        request.app.state.catalog,
        parse_basic(request.headers.get("authorization")),
        request.query_params.get("project_id"),
    )
    authorize(request, caller)
    return caller.project.id


async def list_tables(request: Request) -> Response:
    project_id = _project(request)
    tables = LookupStore(request.app.state.catalog).tables(project_id)
    return json_response({"code": 200, "status": "OK", "results": [{"id": t.id, "name": t.name} for t in tables]})


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid gzip: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"the table is over the limit of {limit} bytes uncompressed")
    if not inflater.eof:
        raise BadRequest("the body is not valid gzip: it ends early")
    return out


def _replace(request: Request, project_id: int, table_id: str, body: bytes) -> Response:
    store = LookupStore(request.app.state.catalog)
    if store.get(project_id, table_id) is None:
        raise _not_found(table_id)
    now = time.time()
    recent = store.replaces_since(project_id, now - 86_400)
    limit = replaces_per_day(request)
    if len(recent) >= limit:
        wait = max(1, math.ceil(recent[len(recent) - limit] + 86_400 - now))
        raise RateLimited(f"at most {limit} lookup table replacements a project in 24 hours", retry_after=wait)
    store.count_replace(project_id, now)
    encoding = (request.headers.get("content-encoding") or "").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes(request))
    elif encoding not in ("", "identity"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}: send gzip or none")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the table is not UTF-8 text (byte {exc.start})") from exc
    try:
        table = csvtable.parse(text)
    except csvtable.Invalid as exc:
        return json_response(
            {
                "code": 400,
                "error": VALIDATION_FAILED,
                "status": "Bad Request",
                "failed_records": [f.as_json() for f in exc.first],
            },
            400,
        )
    if not store.replace(project_id, table_id, table, max_project_rows=max_project_rows(request)):
        raise _not_found(table_id)
    return json_response({"code": 200, "status": "OK"})


async def replace_table(request: Request) -> Response:
    project_id = _project(request)
    limit = max_bytes(request)
    body = await read_raw_body(request, limit)
    if len(body) > limit:
        raise PayloadTooLarge(f"the table is over the limit of {limit} bytes")
    response: Response = await run_in_threadpool(_replace, request, project_id, request.path_params["table_id"], body)
    return response


# -- App API ---------------------------------------------------------------------------------------


def _shape(table: LookupTable) -> dict[str, Any]:
    return {
        "id": table.id,
        "name": table.name,
        "columns": list(table.columns),
        "row_count": table.row_count,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(table.created_at)),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(table.updated_at)),
    }


def app_collection(ctx: AppContext) -> dict[str, Any]:
    store = LookupStore(ctx.catalog)
    if ctx.method == "GET":
        return {"status": "ok", "results": [_shape(t) for t in store.tables(ctx.project.id)]}
    body = ctx.body
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object: {"name": ...}')
    unknown = sorted(set(body) - {"name"})
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    name = body.get("name")
    if name is None:
        raise MissingParameter("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"name must be a non-blank string of at most {MAX_NAME_CHARS} characters")
    return {"status": "ok", "results": _shape(store.create(ctx.project.id, name.strip()))}


def app_item(ctx: AppContext) -> dict[str, Any]:
    table_id = ctx.path_params["table_id"]
    store = LookupStore(ctx.catalog)
    table = store.get(ctx.project.id, table_id)
    if table is None:
        raise _not_found(table_id)
    if ctx.method == "DELETE":
        store.delete(ctx.project.id, table_id)
        return {"status": "ok", "results": {"id": table_id}}
    page = ctx.params.get("page", "0")
    if not (page.isascii() and page.isdigit()):
        raise BadRequest(f"page must be a number from 0, got {page!r}")
    rows = store.rows(table_id, offset=int(page) * ROWS_PAGE, limit=ROWS_PAGE)
    return {
        "status": "ok",
        "results": {
            **_shape(table),
            "page": int(page),
            "page_size": ROWS_PAGE,
            "rows": [{k: csvtable.plain(v) for k, v in row.items()} for row in rows],
            "mapped_properties": _mapping_shape(store.mappings(ctx.project.id, table_id)),
        },
    }


# Keys an event or profile holds outside its properties: no table can be keyed by them (Mixpanel: "Mapping
# a Lookup Table to the $distinct_id property is not supported").
_UNMAPPABLE = {"event": {"$distinct_id", "distinct_id", "time", "$time"}, "user": {"$distinct_id", "distinct_id"}}
_MAPPING_FIELDS = {"event_properties": "event", "user_properties": "user"}


def _mapping_shape(mappings: dict[str, list[str]]) -> dict[str, list[str]]:
    return {field: mappings[source] for field, source in _MAPPING_FIELDS.items()}


def app_mappings(ctx: AppContext) -> dict[str, Any]:
    """The properties this table enriches: `GET`, or `PUT` {"event_properties": [...], "user_properties":
    [...]} to replace them (a missing list is empty)."""
    table_id = ctx.path_params["table_id"]
    store = LookupStore(ctx.catalog)
    if store.get(ctx.project.id, table_id) is None:
        raise _not_found(table_id)
    if ctx.method == "PUT":
        body = ctx.body
        if not isinstance(body, dict):
            raise BadRequest('the body must be a JSON object: {"event_properties": [...], "user_properties": [...]}')
        unknown = sorted(set(body) - set(_MAPPING_FIELDS))
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
        wanted: dict[str, list[str]] = {}
        for field, source in _MAPPING_FIELDS.items():
            props = body.get(field, [])
            if not isinstance(props, list) or not all(isinstance(p, str) and 0 < len(p) <= 255 for p in props):
                raise BadRequest(f"{field} must be a list of property names (1 to 255 characters each)")
            if len(set(props)) != len(props):
                raise BadRequest(f"{field} names a property more than once")
            for prop in props:
                if prop in _UNMAPPABLE[source]:
                    raise BadRequest(f"the {source} property {prop!r} cannot be mapped to a lookup table")
            wanted[source] = list(props)
        store.set_mappings(ctx.project.id, table_id, wanted)
    return {"status": "ok", "results": _mapping_shape(store.mappings(ctx.project.id, table_id))}


ENDPOINTS = [
    Endpoint("/lookup-tables", ("GET",), list_tables, Family.IMPORT, Auth.LOOKUP, None, {"GET": Action.READ}),
    Endpoint(
        "/lookup-tables/{table_id}", ("PUT",), replace_table, Family.IMPORT, Auth.LOOKUP, None, {"PUT": Action.MANAGE}
    ),
    app_route("/lookup-tables", app_collection, ["GET"]),
    app_route("/lookup-tables", app_collection, ["POST"], status=201),
    app_route("/lookup-tables/{table_id}", app_item, ["GET", "DELETE"]),
    app_route("/lookup-tables/{table_id}/mappings", app_mappings, ["GET", "PUT"]),
]
