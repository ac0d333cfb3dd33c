"""ASGI middleware: trailing slashes and CORS, as Mixpanel's browser SDK and older clients need them, and
the direct way to the ingestion endpoints that need nothing of the layers below them."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixhouse.http.endpoint import DirectEndpoint
from mixhouse.http.incoming import header
from mixhouse.http.routes import budget_of

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


class TrailingSlash:
    """`/x` and `/x/` are one route: clients send both (mixpanel-browser posts to /track/)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope, path=path.rstrip("/") or "/")
        await self.app(scope, receive, send)


class Cors:
    """Echo the Origin with credentials allowed (the SDK's XHR sets withCredentials, so "*" fails),
    and answer preflights for any path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")  # (most requests carry none: no Headers built for them)
        if origin is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cors = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            requested = headers.get("access-control-request-headers")
            extra = [
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-max-age", b"86400"),
                (b"content-length", b"0"),
            ]
            if requested:
                extra.append((b"access-control-allow-headers", requested.encode("latin-1")))
            await send({"type": "http.response.start", "status": 204, "headers": cors + extra})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *cors])
            await send(message)

        await self.app(scope, receive, send_with_cors)


class DirectRoutes:
    """Hands a request for a `Direct` endpoint of the route table (mixhouse/http/endpoint.py) straight to
    it, past the layers below this one that would only pass it on: the rate limiter (only for endpoints
    that spend no rate-limit budget, which it lets through untouched), Starlette's exception middleware
    (a direct endpoint renders its own errors and raises none of Starlette's) and the router (the path is
    one of the table's fixed paths and the method one the route takes; the scope gets what the router would
    give it: the route, its endpoint, no path parameters). Anything else goes down the whole stack: a
    method the route does not take still gets the router's 405.

    On /track this takes six coroutine frames and a send wrapper off every request (docs/ingestion.md,
    "The /track fast path")."""

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.direct: dict[str, Route] = {
            route.path: route
            for route in routes
            if isinstance(route, Route)
            and isinstance(route.app, DirectEndpoint)
            and not route.param_convertors
            and budget_of(route.path) is None
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.direct.get(scope["path"])
            if route is not None and (route.methods is None or scope["method"] in route.methods):
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.app(scope, receive, send)
                return
        await self.app(scope, receive, send)
