"""A web session as credentials for the Query and App APIs, so that the page is an ordinary client of them.

A request is authenticated by its session only when it carries no other credentials (no Authorization
header, no v2 signature): Basic credentials keep working exactly as before and always win. A session
request must carry, besides the HttpOnly cookie, the session's CSRF token in the `X-CSRF-Token` header,
whatever its method: a cross-site form, image, script (JSONP) or `fetch` can send the cookie but cannot
know the token, which only `/web/session` hands out, and only to the page's own origin. A request whose
`Origin` header names another origin, or whose `Sec-Fetch-Site` says it comes from another origin or site,
is refused too. The caller then has the user's role on the project
the request names, as a service account would.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from mixhouse.domain.auth import Caller, Via
from mixhouse.errors import BadRequest, Forbidden, Unauthorized
from mixhouse.web.accounts import Accounts, Session, csrf_matches

COOKIE = "mixhouse_session"
CSRF_HEADER = "x-csrf-token"


def same_origin(request: HTTPConnection) -> bool:
    """No Origin header (same-origin GETs and non-browser clients), or the server's own origin; and, when
    the browser says where the request comes from (`Sec-Fetch-Site`), the page itself or the user."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"{request.url.scheme}://{host}", f"http://{host}", f"https://{host}")


def current_session(request: HTTPConnection) -> Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return Accounts(request.app.state.catalog).session(token)


def session_caller(
    request: HTTPConnection, project_id: str | None, params_have_signature: bool = False
) -> Caller | None:
    """The caller of a session request, None when the request is not one (it has other credentials or no
    session cookie), or Unauthorized/Forbidden when the session is expired, lacks its CSRF token, comes
    from another origin or has no role on the project."""
    if (request.headers.get("authorization") or "").strip() or params_have_signature:
        return None
    if not request.cookies.get(COOKIE):
        return None
    session = current_session(request)
    if session is None:
        raise Unauthorized("Unable to authenticate request: the session has expired, log in again")
    if not same_origin(request):
        raise Forbidden("a session is accepted only from the app's own origin")
    if not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        raise Forbidden("a session request needs its CSRF token in the X-CSRF-Token header")
    if not project_id:
        raise BadRequest("project_id is required when authenticating with a session")
    try:
        pid = int(project_id)
    except ValueError as exc:
        raise BadRequest(f"Invalid parameter: project_id must be an integer, got {project_id!r}") from exc
    role = session.user.roles.get(pid)
    project = request.app.state.catalog.project_by_id(pid) if role is not None else None
    if role is None or project is None:
        raise Forbidden(f"user {session.user.email!r} has no access to project {pid}")
    return Caller(project=project, via=Via.SESSION, role=role, username=session.user.email)
