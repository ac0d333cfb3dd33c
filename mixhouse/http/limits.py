"""Rate limits at the HTTP edge: an ASGI middleware that finds the API (the endpoint's budget in the route
table, mixhouse/http/routes.py) and the project of a request,
admits it or answers 429 with `Retry-After` in the family's envelope, holds a concurrency slot until
the response (streamed bodies included) is sent, and gives engine queries the project's deadline.

Only authenticated requests count: the middleware checks the credentials the way the handler will,
and lets requests it cannot attribute pass untouched (the handler then answers 401/403/400).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixhouse.domain.limits import Api, Limiter, parse_setting, query_deadline
from mixhouse.domain.project import Project
from mixhouse.errors import BadRequest, RateLimited
from mixhouse.http.callers import caller_for
from mixhouse.http.endpoint import Endpoint
from mixhouse.http.incoming import read_incoming
from mixhouse.http.responses import Family, error_response
from mixhouse.http.routes import budget_of, path_params

RateLimitedHook = Callable[[Api], None]


def _project_of(conn: Request, spec: Endpoint, params: dict[str, str]) -> Project:
    """The project whose credentials these are; raises MixhouseError when the handler would refuse."""
    if spec.api is Api.GDPR:
        # GDPR calls name the project by its token and carry a personal OAuth token.
        catalog = conn.app.state.catalog
        project: Project | None = catalog.project_by_token(params.get("token", ""))
        if project is None and params.get("project_id", "").isdigit():
            project = catalog.project_by_id(int(params["project_id"]))
        if project is None or not conn.headers.get("authorization"):
            raise BadRequest("no project")
        return project
    path_project = path_params(conn.scope["path"], spec).get("project_id")
    return caller_for(conn, spec.auth, params, path_project).project


class RateLimits:
    def __init__(self, app: ASGIApp, on_limited: RateLimitedHook | None = None, limiter: Limiter | None = None) -> None:
        self.app = app
        self.limiter = limiter or Limiter()  # a SharedLimiter counts across processes (mixhouse/cluster)
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = budget_of(scope["path"]) if scope["type"] == "http" and scope["method"] != "OPTIONS" else None
        api = spec.api if spec is not None else None  # the budget the route table gives the path
        if spec is None or api is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        conn = Request(scope, receive)
        params = dict(QueryParams(scope.get("query_string", b"")))
        project: Project | None = None
        try:
            project = _project_of(conn, spec, params)
        except Exception:  # not attributable here; the handler answers it in its own envelope
            # Parameters (project_id, a signature) may be in the body: read it (once for the request: the
            # handler gets the same decoded body, mixhouse/http/incoming.py), then try again.
            if scope["method"] in ("POST", "PUT", "PATCH") and api is not Api.INGESTION:
                try:
                    incoming = await read_incoming(conn)
                    project = _project_of(conn, spec, incoming.params)
                except Exception:
                    project = None
        rule = parse_setting(project.rate_limits).rule(api) if project is not None else None
        if project is None or rule is None or rule.empty:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["project_id"] = project.id
        size = int(headers.get("content-length") or 0) if api is Api.INGESTION else 0
        try:
            if self.limiter.blocking:
                permit = await anyio.to_thread.run_sync(lambda: self.limiter.acquire(project.id, api, rule, size=size))
            else:
                permit = self.limiter.acquire(project.id, api, rule, size=size)
        except RateLimited as exc:
            if self.on_limited is not None:
                self.on_limited(api)
            await self._refuse(scope, spec.family or Family.QUERY, exc, params, send)
            return
        try:
            with query_deadline(rule.timeout_seconds):
                await self.app(scope, receive, send)
        finally:
            self.limiter.release(permit)

    async def _refuse(self, scope: Scope, family: Family, exc: RateLimited, params: dict[str, Any], send: Send) -> None:
        request = Request(scope)
        response = error_response(family, request, exc, {k: str(v) for k, v in params.items()})
        await response(scope, self._no_body, send)

    @staticmethod
    async def _no_body() -> Message:
        return {"type": "http.disconnect"}
