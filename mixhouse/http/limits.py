"""Rate limits at the HTTP edge: an ASGI middleware that finds the API and the project of a request,
admits it or answers 429 with `Retry-After` in the family's envelope, holds a concurrency slot until
the response (streamed bodies included) is sent, and gives engine queries the project's deadline.

Only authenticated requests count: the middleware checks the credentials the way the handler will,
and lets requests it cannot attribute pass untouched (the handler then answers 401/403/400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixhouse.catalog import Catalog
from mixhouse.domain import payloads
from mixhouse.domain.auth import Caller, authenticate, authenticate_query, parse_basic
from mixhouse.domain.limits import Api, Limiter, parse_setting, query_deadline
from mixhouse.domain.project import Project
from mixhouse.errors import BadRequest, MixhouseError, RateLimited
from mixhouse.http.responses import Family, error_response
from mixhouse.web.session_auth import session_caller

_APP_PROJECT = re.compile(r"^/api/app/projects/([^/]+)(/.*)?$")

RateLimitedHook = Callable[[Api], None]


def api_of(path: str) -> Api | None:
    """Which limited API a path belongs to (None: not limited)."""
    path = path.rstrip("/") or "/"
    if path in ("/api/query/jql", "/api/2.0/jql"):
        return Api.JQL
    if path == "/api/2.0/export":
        return Api.EXPORT
    if path.startswith(("/api/query/", "/api/2.0/")):
        return Api.QUERY
    if path.startswith(("/api/app/data-retrievals", "/api/app/data-deletions")):
        return Api.GDPR
    match = _APP_PROJECT.match(path)
    if match and (match.group(2) or "").startswith("/schemas"):
        return Api.LEXICON
    if path == "/import":
        return Api.INGESTION
    return None


def family_of_api(api: Api) -> Family:
    if api is Api.INGESTION:
        return Family.IMPORT
    if api in (Api.GDPR, Api.LEXICON):
        return Family.APP
    return Family.QUERY


class _Replay:
    """A receive() that hands back a body already read, then continues with the real stream."""

    def __init__(self, body: bytes, more: bool, receive: Receive) -> None:
        self._first: Message | None = {"type": "http.request", "body": body, "more_body": more}
        self._receive = receive

    async def __call__(self) -> Message:
        if self._first is not None:
            message, self._first = self._first, None
            return message
        return await self._receive()


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool, Receive]:
    """Up to `limit` bytes of the body; (body, complete, a receive that replays it)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False, receive
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
    body = b"".join(chunks)
    return body, not more, _Replay(body, more, receive)


def _body_params(body: bytes, headers: Headers) -> dict[str, str]:
    """The parameters a request body carries, read as `mixhouse.http.incoming` reads them."""
    try:
        raw = payloads.decompress(body, headers.get("content-encoding"))
        if not raw.strip():
            return {}
        if payloads.looks_like_json(raw):
            value = payloads.parse_json_body(raw)
            if not isinstance(value, dict):
                return {}
            return {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()}
        return payloads.parse_form(raw)
    except MixhouseError:
        return {}


def _authenticated_project(catalog: Catalog, api: Api, path: str, headers: Headers, params: dict[str, str]) -> Project:
    """The project whose credentials these are; raises MixhouseError when the handler would refuse."""
    authorization = headers.get("authorization")
    if api is Api.GDPR:
        # GDPR calls name the project by its token and carry a personal OAuth token.
        project = catalog.project_by_token(params.get("token", ""))
        if project is None and params.get("project_id", "").isdigit():
            project = catalog.project_by_id(int(params["project_id"]))
        if project is None or not authorization:
            raise BadRequest("no project")
        return project
    if api in (Api.QUERY, Api.JQL, Api.EXPORT):  # Basic credentials or a v2 signature
        return authenticate_query(catalog, authorization, params).project
    project_id = params.get("project_id")
    match = _APP_PROJECT.match(path)
    if match:
        project_id = match.group(1)
    return authenticate(catalog, parse_basic(authorization), project_id, allow_token=api is Api.INGESTION).project


def _session(scope: Scope, api: Api, params: dict[str, str]) -> Caller | None:
    """A web app session on the Query API (mixhouse/web/session_auth.py) counts in its project's budget."""
    if api not in (Api.QUERY, Api.JQL):
        return None
    signed = "sig" in params or "api_key" in params
    return session_caller(HTTPConnection(scope), params.get("project_id"), signed)


class RateLimits:
    def __init__(self, app: ASGIApp, on_limited: RateLimitedHook | None = None) -> None:
        self.app = app
        self.limiter = Limiter()
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = api_of(scope["path"]) if scope["type"] == "http" and scope["method"] != "OPTIONS" else None
        if api is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        catalog: Catalog = scope["app"].state.catalog
        params = dict(QueryParams(scope.get("query_string", b"")))
        project: Project | None = None
        try:
            session = _session(scope, api, params)
            project = (
                session.project if session else _authenticated_project(catalog, api, scope["path"], headers, params)
            )
        except Exception:  # not attributable here; the handler answers it in its own envelope
            # Parameters (project_id, a signature) may be in the body: look there, then try again.
            if scope["method"] in ("POST", "PUT", "PATCH") and api is not Api.INGESTION:
                body, complete, receive = await _read_body(receive, payloads.MAX_BODY_BYTES)
                if complete:
                    try:
                        merged = params | _body_params(body, headers)
                        project = _authenticated_project(catalog, api, scope["path"], headers, merged)
                    except Exception:
                        project = None
        rule = parse_setting(project.rate_limits).rule(api) if project is not None else None
        if project is None or rule is None or rule.empty:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["project_id"] = project.id
        size = int(headers.get("content-length") or 0) if api is Api.INGESTION else 0
        try:
            permit = self.limiter.acquire(project.id, api, rule, size=size)
        except RateLimited as exc:
            if self.on_limited is not None:
                self.on_limited(api)
            await self._refuse(scope, api, exc, params, send)
            return
        try:
            with query_deadline(rule.timeout_seconds):
                await self.app(scope, receive, send)
        finally:
            self.limiter.release(permit)

    async def _refuse(self, scope: Scope, api: Api, exc: RateLimited, params: dict[str, Any], send: Send) -> None:
        request = Request(scope)
        response = error_response(family_of_api(api), request, exc, {k: str(v) for k, v in params.items()})
        await response(scope, self._no_body, send)

    @staticmethod
    async def _no_body() -> Message:
        return {"type": "http.disconnect"}
