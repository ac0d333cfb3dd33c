"""An OpenAPI 3 document of the server, generated from its route table (mixhouse/http/routes.py: the kind
of parameters from each endpoint's family and auth mode) at GET /openapi.json, so that
every route (including ones added later) is described and fuzzed (tests/test_fuzz_api.py).

Parameters are described by API family, not per endpoint: the document is for tools and fuzzers, the
exact semantics are in docs/. Every operation may answer any status; no response schemas are
promised beyond the envelopes in docs/.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mixhouse.http.endpoint import Auth, Endpoint
from mixhouse.http.responses import Family, json_response

PATH = "/openapi.json"

_STRING: dict[str, Any] = {"type": "string"}
_INTEGER: dict[str, Any] = {"type": "integer"}
_DATE: dict[str, Any] = {"type": "string", "format": "date"}

_QUERY_PARAMS: dict[str, dict[str, Any]] = {
    "project_id": _INTEGER,
    "workspace_id": _INTEGER,
    "from_date": _DATE,
    "to_date": _DATE,
    "event": _STRING,
    "events": _STRING,
    "name": _STRING,
    "values": _STRING,
    "where": _STRING,
    "on": _STRING,
    "selector": _STRING,
    "unit": {"type": "string", "enum": ["minute", "hour", "day", "week", "month"]},
    "interval": _INTEGER,
    "type": {"type": "string", "enum": ["general", "unique", "average"]},
    "limit": _INTEGER,
    "format": {"type": "string", "enum": ["json", "csv"]},
    "callback": _STRING,
    "funnel_id": _INTEGER,
    "bookmark_id": _INTEGER,
    "born_event": _STRING,
    "born_where": _STRING,
    "retention_type": _STRING,
    "distinct_id": _STRING,
    "distinct_ids": _STRING,
    "page": _INTEGER,
    "page_size": _INTEGER,
    "session_id": _STRING,
    "time_in_ms": {"type": "boolean"},
}
_INGEST_PARAMS: dict[str, dict[str, Any]] = {
    "data": _STRING,
    "verbose": {"type": "string", "enum": ["0", "1", "2"]},
    "ip": {"type": "string", "enum": ["0", "1"]},
    "img": {"type": "string", "enum": ["0", "1"]},
    "strict": {"type": "string", "enum": ["0", "1"]},
    "callback": _STRING,
    "project_id": _INTEGER,
}
_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": _STRING,
        "properties": {"type": "object", "additionalProperties": True},
    },
}
_INGEST_BODY: dict[str, Any] = {
    "content": {
        "application/json": {"schema": {"type": "array", "items": _EVENT, "maxItems": 50}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"data": _STRING}}},
    }
}
_JSON_OBJECT_BODY: dict[str, Any] = {
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
}
_FORM_BODY: dict[str, Any] = {
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {k: v for k, v in _QUERY_PARAMS.items() if k != "callback"}}
        }
    }
}


def _kind(spec: Endpoint) -> str:
    if spec.family in (Family.TRACK, Family.IMPORT):
        return "ingest"
    if spec.auth is Auth.APP:
        return "app"
    if spec.auth is Auth.QUERY:
        return "query"
    return "other"


def _operation(path: str, method: str, route: Route, spec: Endpoint) -> dict[str, Any]:
    kind = _kind(spec)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _INTEGER if name == "project_id" else _STRING}
        for name in route.param_convertors
    ]
    query = {"ingest": _INGEST_PARAMS, "query": _QUERY_PARAMS}.get(kind, {})
    parameters += [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in query.items()]
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}{path.replace('/', '_').replace('{', '').replace('}', '')}",
        "tags": [kind],
        "parameters": parameters,
        "responses": {"default": {"description": "the API family's success or error envelope (see docs/)"}},
    }
    if spec.auth is not Auth.NONE:
        operation["security"] = [{"basicAuth": []}]
    if method in ("POST", "PUT", "PATCH"):
        body = {"ingest": _INGEST_BODY, "query": _FORM_BODY}.get(kind, _JSON_OBJECT_BODY)
        operation["requestBody"] = {"required": False, **body}
    return operation


_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


def build(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        spec: Endpoint | None = getattr(route, "spec", None)  # the route table's row (mixhouse/http/routes.py)
        if not isinstance(route, Route) or spec is None or route.path == PATH:
            continue
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        path = _CONVERTOR.sub(r"{\1}", route.path)  # OpenAPI templates have no `{name:path}` convertors
        item = paths.setdefault(path, {})
        for method in methods:
            item[method.lower()] = _operation(path, method, route, spec)
    return {
        "openapi": "3.0.3",
        "info": {"title": "mixhouse", "version": "1", "description": "Mixpanel's HTTP APIs, self-hosted"},
        "paths": paths,
        "components": {"securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}}},
    }


async def openapi(request: Request) -> Response:
    return json_response(build(list(request.app.routes)))
