"""The wrapper every route goes through: errors rendered in the API family's envelope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from mixhouse.errors import MixhouseError
from mixhouse.http.responses import Family, error_response

log = logging.getLogger("mixhouse.http")

Handler = Callable[[Request], Awaitable[Response]]

# nginx's "client closed request": what the access log shows for a request whose client went away
# before its body arrived. Nothing is sent (there is no one to send it to).
CLIENT_CLOSED = 499


def _params(request: Request) -> dict[str, str]:
    params: dict[str, str] | None = getattr(request.state, "params", None)
    return params if params is not None else dict(request.query_params)


def endpoint(handler: Handler, family: Family) -> Handler:
    """Render MixhouseErrors in the family's format; anything else is a bug, logged, never a traceback."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ClientDisconnect:
            # A client that hangs up mid-upload is not a server error: one line, no traceback.
            log.warning("client closed the connection during %s %s", request.method, request.url.path)
            return Response(status_code=CLIENT_CLOSED)
        except MixhouseError as exc:
            # A bad where/on (an ExpressionError) answers its message with a caret under the place.
            return error_response(family, request, exc, _params(request))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error_response(family, request, MixhouseError("internal server error"), _params(request))

    return wrapped
