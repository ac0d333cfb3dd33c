"""Who is calling: the credential forms Mixpanel's clients send, and the project they may use.

Accepted forms (https://developer.mixpanel.com/reference/authentication, and the forms real clients send, docs/clients.md):
- Basic base64("user:secret") + project_id: a service account;
- Basic base64("secret:") or base64("secret") (standard or URL-safe alphabet): the project secret;
- Basic with the value in plain text instead of base64;
- Basic base64("token:") on /import without project_id: the project token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from mixhouse.domain.catalog import CatalogPort
from mixhouse.domain.project import Project, Role
from mixhouse.errors import BadRequest, Forbidden, MissingParameter, Unauthorized

AUTH_FAILED = "Unable to authenticate request: invalid credentials"
TOKEN_CANNOT_READ = (
    "Unable to authenticate request: a project token authenticates ingestion only; "
    "use the project's API secret or a service account"
)


class Via(StrEnum):
    SERVICE_ACCOUNT = "service_account"
    SECRET = "secret"
    TOKEN = "token"
    API_KEY = "api_key"
    SIGNATURE = "signature"
    SESSION = "session"  # a web app session (mixhouse/web/session_auth.py)


@dataclass(frozen=True)
class BasicCredentials:
    user: str
    password: str


@dataclass(frozen=True)
class Caller:
    project: Project
    via: Via
    role: Role  # a project secret or token acts as the project owner
    username: str | None = None


def _b64decode(value: str) -> str | None:
    padded = value + "=" * (-len(value) % 4)
    for altchars in (None, b"-_"):  # standard, then URL-safe alphabet (tap-mixpanel)
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeError, ValueError):
            continue
    return None


def parse_basic(header: str | None) -> BasicCredentials | None:
    """The user and password of a Basic header, or None if there is no Basic header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    value = value.strip()
    # Plain-text credentials (documented as accepted) contain a colon; base64 never does.
    decoded = value if ":" in value else _b64decode(value)
    if decoded is None:
        decoded = value
    user, _, password = decoded.partition(":")
    return BasicCredentials(user=user, password=password)


SIGNATURE_EXCLUDED = frozenset({"sig", "callback"})


def signature(params: Mapping[str, str], secret: str) -> str:
    """Legacy Data API v2 signature (Mixpanel's legacy Data Export API v2 documentation): md5 of the sorted `key=value` pairs, no separator,
    followed by the API secret; `sig` and `callback` excluded; values un-encoded."""
    args = "".join(f"{k}={params[k]}" for k in sorted(params) if k not in SIGNATURE_EXCLUDED)
    return hashlib.md5((args + secret).encode("utf-8")).hexdigest()


def authenticate_signature(catalog: CatalogPort, params: Mapping[str, str], *, now: float | None = None) -> Caller:
    """A signed v2 request: api_key + expire + sig, with v2's exact error strings."""
    api_key = params.get("api_key")
    if not api_key:
        raise MissingParameter("api_key")
    project = catalog.project_by_api_key(api_key)
    if project is None:
        raise Unauthorized("Invalid API key")
    expire = params.get("expire")
    if not expire:
        raise MissingParameter("expire")
    try:
        expires_at = float(expire)
    except ValueError as exc:
        raise BadRequest("Invalid parameter: expire") from exc
    if expires_at < (time.time() if now is None else now):
        raise BadRequest("Expired request")
    sig = params.get("sig", "")
    if not hmac.compare_digest(sig.lower(), signature(params, project.secret)):
        raise BadRequest("Invalid request signature")
    return Caller(project=project, via=Via.SIGNATURE, role=Role.OWNER)


def authenticate_query(catalog: CatalogPort, authorization: str | None, params: Mapping[str, str]) -> Caller:
    """Read endpoints: a v2 signature when `sig` is given, else Basic credentials."""
    if "sig" in params and not (authorization or "").strip():
        return authenticate_signature(catalog, params)
    return authenticate(catalog, parse_basic(authorization), params.get("project_id"))


def authenticate_api_key(catalog: CatalogPort, api_key: str) -> Caller:
    """Legacy /import with only `api_key` (the npm SDK's `key` option, its one way in over plain
    http). The key identifies the project like the token does; it is no read credential."""
    project = catalog.project_by_api_key(api_key)
    if project is None:
        raise Unauthorized("Invalid API key")
    return Caller(project=project, via=Via.API_KEY, role=Role.OWNER)


def _parse_project_id(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise BadRequest(f"Invalid parameter: project_id must be an integer, got {raw!r}") from exc


def authenticate(
    catalog: CatalogPort,
    credentials: BasicCredentials | None,
    project_id_param: str | None,
    *,
    allow_token: bool = False,
) -> Caller:
    """Resolve credentials to the project they may act on, or raise Unauthorized/Forbidden."""
    project_id = _parse_project_id(project_id_param)
    if credentials is None or not credentials.user:
        raise Unauthorized("Unable to authenticate request: no credentials were given")

    if credentials.password:
        account = catalog.verify_service_account(credentials.user, credentials.password)
        if account is None:
            raise Unauthorized(AUTH_FAILED)
        if project_id is None:
            raise BadRequest("project_id is required when authenticating with a service account")
        role = account.roles.get(project_id)
        project = catalog.project_by_id(project_id)
        if role is None or project is None:
            raise Forbidden(f"service account {account.username!r} has no access to project {project_id}")
        return Caller(project=project, via=Via.SERVICE_ACCOUNT, role=role, username=account.username)

    project = catalog.project_by_secret(credentials.user)
    via = Via.SECRET
    if project is None and allow_token and project_id is None:
        project = catalog.project_by_token(credentials.user)
        via = Via.TOKEN
    if project is None:
        if catalog.project_by_token(credentials.user) is not None:
            # Mixpanel's read APIs take the secret or a service account, never the public token.
            raise Unauthorized(TOKEN_CANNOT_READ)
        raise Unauthorized(AUTH_FAILED)
    if project_id is not None and project_id != project.id:
        raise Forbidden(f"these credentials are not valid for project {project_id}")
    return Caller(project=project, via=via, role=Role.OWNER)
