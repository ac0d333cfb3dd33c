"""The web app's HTTP side: the page and its static files, login, logout and the session, and the
dashboards' App API routes. Errors use the App envelope `{"status": "error", "error": ...}`.

The page is public (it holds no data: it shows a login form until `/web/session` answers); everything
it shows comes from the Query and App APIs, authenticated by the session (session_auth.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mixhouse.catalog import Catalog
from mixhouse.errors import Forbidden, Unauthorized
from mixhouse.http.incoming import read_incoming
from mixhouse.http.responses import json_response
from mixhouse.web.accounts import Accounts, NewSession, Session, csrf_matches
from mixhouse.web.assets import StaticAssets, versioned_page
from mixhouse.web.session_auth import COOKIE, CSRF_HEADER, current_session, same_origin
from mixhouse.web.throttle import LoginThrottle

STATIC = Path(__file__).parent / "static"
MAX_LOGIN_BODY_BYTES = 8 * 1024
LOGIN_FAILED = "invalid email or password"
# Always: browsers keep Secure cookies from http://localhost and http://127.0.0.1 as well as from https.
SECURE_COOKIE = True

# The page runs only its own scripts; nothing frames it; nothing leaks the URL to other sites.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _session_payload(catalog: Catalog, session: Session) -> dict[str, Any]:
    """What the page may know: the user, the projects it may open (id, name, role, timezone), the CSRF
    token. Never a project's token, secret or API key."""
    projects = []
    for project_id, role in sorted(session.user.roles.items()):
        project = catalog.project_by_id(project_id)
        if project is not None:
            projects.append({"id": project.id, "name": project.name, "role": role.value, "timezone": project.timezone})
    return {
        "status": "ok",
        "results": {"email": session.user.email, "projects": projects, "csrf_token": session.csrf_token},
    }


async def page(request: Request) -> Response:
    """index.html, naming each static file with its content hash (assets.py)."""
    return Response(versioned_page(STATIC), headers=PAGE_HEADERS, media_type="text/html; charset=utf-8")


async def login(request: Request) -> Response:
    if not same_origin(request):
        raise Forbidden("log in from the app's own origin")
    incoming = await read_incoming(request, limit=MAX_LOGIN_BODY_BYTES)
    body = incoming.json_body if isinstance(incoming.json_body, dict) else incoming.form
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise Unauthorized(LOGIN_FAILED)
    catalog: Catalog = request.app.state.catalog
    address = request.client.host if request.client else ""
    throttle: LoginThrottle = request.app.state.login_throttle  # one per server process
    throttle.check(email, address)

    def verify_and_open() -> NewSession | None:  # argon2 takes tens of milliseconds: off the event loop
        accounts = Accounts(catalog, session_seconds=request.app.state.settings.web_session_seconds)
        user = accounts.verify_password(email, password)
        return accounts.open_session(user) if user is not None else None

    new = await run_in_threadpool(verify_and_open)
    if new is None:
        throttle.failed(email, address)
        raise Unauthorized(LOGIN_FAILED)
    throttle.succeeded(email, address)
    response = json_response(_session_payload(catalog, new.session))
    response.set_cookie(
        COOKIE,
        new.token,
        max_age=max(1, int(new.session.expires_at - time.time())),
        path="/",
        secure=SECURE_COOKIE,
        httponly=True,
        samesite="strict",
    )
    return response


async def session(request: Request) -> Response:
    if not same_origin(request):
        raise Forbidden("the session is shown only to the app's own origin")
    current = current_session(request)
    if current is None:
        raise Unauthorized("no session: log in")
    return json_response(_session_payload(request.app.state.catalog, current))


async def logout(request: Request) -> Response:
    current = current_session(request)
    if current is None:
        raise Unauthorized("no session: log in")
    if not same_origin(request) or not csrf_matches(current, request.headers.get(CSRF_HEADER)):
        raise Forbidden("logging out needs the session's CSRF token in the X-CSRF-Token header")
    Accounts(request.app.state.catalog).close_session(request.cookies[COOKIE])
    response = json_response({"status": "ok", "results": {"logged_out": True}})
    response.delete_cookie(COOKIE, path="/", secure=SECURE_COOKIE, httponly=True, samesite="strict")
    return response


# The page's scripts and styles, compressed once and kept by the browser while their content hash holds
# (assets.py); served under /static (mixhouse/http/routes.py).
STATIC_APP = StaticAssets(STATIC)
