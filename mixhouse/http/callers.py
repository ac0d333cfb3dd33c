"""Who is calling: the caller of a request, by its endpoint's auth mode (mixhouse/http/endpoint.py
`Auth`), resolved once per request. The rate limiter needs it to find the project's budget before the
handler runs, and the handler needs it to act; the first to ask resolves it and the answer is kept in
the request's state for the same parameters (a JSON or form body may add parameters after the limiter
looked, and then the caller is resolved again with them)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import HTTPConnection

from mixhouse.domain.auth import Caller, Via, authenticate, authenticate_api_key, authenticate_query, parse_basic
from mixhouse.domain.project import Role
from mixhouse.errors import Forbidden, MissingParameter, Unauthorized
from mixhouse.http.endpoint import Auth
from mixhouse.web.session_auth import session_caller

_MEMO = "mixhouse.callers"


def caller_for(conn: HTTPConnection, auth: Auth, params: Mapping[str, str], path_project: str | None = None) -> Caller:
    """The caller of a request to an endpoint of `auth` mode (QUERY, APP, IMPORT or FLAGS), with `params` (the
    query string and the body's parameters) and the project id its path names, if any. Raises the
    MixhouseError the handler answers (401, 403, 400) when the credentials do not do."""
    memo: dict[tuple[object, ...], Caller] = conn.scope.setdefault("state", {}).setdefault(_MEMO, {})
    key = (auth, path_project, frozenset(params.items()))
    caller = memo.get(key)
    if caller is None:
        caller = memo[key] = _resolve(conn, auth, params, path_project)
    return caller


def _resolve(conn: HTTPConnection, auth: Auth, params: Mapping[str, str], path_project: str | None) -> Caller:
    catalog = conn.app.state.catalog
    authorization = conn.headers.get("authorization")
    if auth is Auth.QUERY:
        # A web app session, Basic credentials, or a v2 signature.
        session = session_caller(conn, params.get("project_id"), "sig" in params or "api_key" in params)
        if session is not None:
            return session
        # A v2 request (api_key, no Authorization header) without its signature: v2's own error.
        if "api_key" in params and "sig" not in params and not (authorization or "").strip():
            raise MissingParameter("sig")
        return authenticate_query(catalog, authorization, dict(params))
    if auth is Auth.APP:
        project_id = path_project or params.get("project_id")
        return session_caller(conn, project_id) or authenticate(catalog, parse_basic(authorization), project_id)
    if auth is Auth.IMPORT:
        api_key = params.get("api_key")
        if not (authorization or "").strip() and api_key:
            return authenticate_api_key(catalog, api_key)
        return authenticate(catalog, parse_basic(authorization), params.get("project_id"), allow_token=True)
    if auth is Auth.FLAGS:
        # Basic `token:`, `secret:` or a service account + project_id, or no header and the token alone.
        token = params.get("token")
        credentials = parse_basic(authorization)
        if credentials is None:
            if not token:
                raise MissingParameter("token")
            project = catalog.project_by_token(token)
            if project is None:
                raise Unauthorized("Invalid token")
            return Caller(project=project, via=Via.TOKEN, role=Role.CONSUMER)
        caller = authenticate(catalog, credentials, params.get("project_id"), allow_token=True)
        if token and token != caller.project.token:
            raise Forbidden("token does not belong to the authenticated project")
        return caller
    raise ValueError(f"no caller to resolve for {auth} endpoints")
