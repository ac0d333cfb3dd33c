"""What an endpoint is (`Endpoint`: one row of the route table, mixhouse/http/routes.py) and the wrapper
every route goes through: errors rendered in the API family's envelope.

Most handlers take a Starlette `Request` and return a `Response`. A handler on the ingestion hot path
(`/track`, `/engage`, `/groups`: one small request per event from every SDK) is `Direct`: it speaks ASGI
itself, so that a request is not wrapped in Starlette's request/response machinery on its way through, and
the route is an ASGI application (`DirectEndpoint`) that `mixhouse.http.middleware.DirectRoutes` can call
without the router. Its errors are rendered exactly as `endpoint` renders a Request handler's."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mixhouse.domain.limits import Api
from mixhouse.domain.permissions import Action
from mixhouse.errors import MixhouseError
from mixhouse.http.responses import Family, error_response

log = logging.getLogger("mixhouse.http")

# A direct handler's reply: any ASGI application that sends one response (a Starlette Response, or a
# mixhouse.http.responses.Fixed).
Reply = Callable[[Scope, Receive, Send], Awaitable[None]]
AsgiHandler = Callable[[Scope, Receive], Awaitable[Reply]]


@dataclass(frozen=True)
class Direct:
    """A handler that reads the ASGI scope and `receive` itself and returns its reply (see the module's
    docstring). Called as an ASGI application it sends that reply (an endpoint of no family, whose errors
    are the server's 500); `endpoint` gives it its family's error envelope."""

    handler: AsgiHandler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = await self.handler(scope, receive)
        await reply(scope, receive, send)


Handler = Callable[[Request], Awaitable[Response]] | Direct


class Auth(StrEnum):
    """How a caller proves who it is on an endpoint (docs/auth.md)."""

    NONE = "none"  # no credentials and no project: health, metrics, the OpenAPI document, the page
    RECORD_TOKEN = "record_token"  # /track /engage /groups: the project token inside each record
    IMPORT = "import"  # /import: project secret, service account + project_id, API key, or token
    QUERY = "query"  # Query API and export: Basic (service account, secret), a v2 signature, a web session
    APP = "app"  # App API: Basic for the project in the path, or a web session
    ORGANIZATION = "organization"  # /api/app/organizations/{id}/...: a service account of that organisation
    FLAGS = "flags"  # /flags: the project token (Basic or parameter) or any credentials of the project
    LOGIN = "login"  # the web app's login: an email and password in the body
    SESSION = "session"  # the web app's session cookie
    GDPR = "gdpr"  # GDPR v3: the project's token and an OAuth bearer token (or an admin's Basic credentials)
    LOOKUP = "lookup"  # /lookup-tables: Basic (service account + project_id, or the project secret)
    PIPELINES = "pipelines"  # /api/2.0/nessie/pipeline: Basic (service account + project_id, or the project secret)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint, declared once: everything the server does with a request before and around its
    handler (routing, the error envelope, the rate-limit budget, authentication, the role action, the
    OpenAPI document, the access log) reads it from here."""

    path: str  # a Starlette path template, e.g. /api/app/projects/{project_id}/funnels
    methods: tuple[str, ...]
    handler: Handler
    family: Family | None  # the error envelope; None: answered as is (no family wrapper)
    auth: Auth
    api: Api | None = None  # the rate-limit budget it spends (None: not limited)
    actions: Mapping[str, Action] = field(default_factory=dict)  # the role action per method

    def action(self, method: str) -> Action | None:
        return self.actions.get(method)


@dataclass(frozen=True)
class Mounted:
    """An ASGI application served under a path prefix (the web app's static files)."""

    path: str
    app: ASGIApp
    name: str


# nginx's "client closed request": what the access log shows for a request whose client went away
# before its body arrived. Nothing is sent (there is no one to send it to).
CLIENT_CLOSED = 499


def _params(request: Request) -> dict[str, str]:
    params: dict[str, str] | None = getattr(request.state, "params", None)
    return params if params is not None else dict(request.query_params)


def endpoint(handler: Handler, family: Family) -> Callable[[Request], Awaitable[Response]] | ASGIApp:
    """Render MixhouseErrors in the family's format; anything else is a bug, logged, never a traceback."""
    if isinstance(handler, Direct):
        return DirectEndpoint(handler.handler, family)

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return _failure(family, request, exc)

    return wrapped


def _failure(family: Family, request: Request, exc: Exception) -> Response:
    """The reply to a handler that raised `exc` (called in its `except` block, for the traceback)."""
    if isinstance(exc, ClientDisconnect):
        # A client that hangs up mid-upload is not a server error: one line, no traceback.
        log.warning("client closed the connection during %s %s", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED)
    if isinstance(exc, MixhouseError):
        # A bad where/on (an ExpressionError) answers its message with a caret under the place.
        return error_response(family, request, exc, _params(request))
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(family, request, MixhouseError("internal server error"), _params(request))


class DirectEndpoint:
    """The ASGI application of a `Direct` handler (an instance, so that Starlette's Route calls it as ASGI),
    with `endpoint`'s error envelope."""

    def __init__(self, handler: AsgiHandler, family: Family) -> None:
        self.handler = handler
        self.family = family

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Reply
        try:
            response = await self.handler(scope, receive)
        except Exception as exc:
            response = _failure(self.family, Request(scope, receive), exc)
        await response(scope, receive, send)
