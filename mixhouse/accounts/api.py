"""The Service Accounts API (https://docs.mixpanel.com/reference/service-accounts-api): handlers over
an organisation's context, plus the project-level list. The HTTP layer (mixhouse/http/org_api.py)
authenticates the service account, checks its organisation role against the route's action and that the
organisation in the path is its own, then calls these with the parsed request.

Shapes (https://docs.mixpanel.com/reference/list-service-accounts, .../create-service-account,
.../add-service-accounts-to-projects): an account is `{"id", "username", "last_used", "expires",
"creator", "created", "user"}` (times ISO 8601 in UTC with `Z`, `null` when never); creation adds the
secret as `token`, returned this once; membership changes answer `{"status": "ok"}`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mixhouse.accounts.store import AccountRecord, AccountStore, outranks
from mixhouse.catalog import Catalog
from mixhouse.domain.app_context import AppContext
from mixhouse.domain.project import Role, ServiceAccount
from mixhouse.errors import BadRequest, Forbidden, MissingParameter, NotFound

MAX_USERNAME_LENGTH = 255
MAX_IDS_PER_REQUEST = 1000  # service_account_ids and projects of one membership request


@dataclass(frozen=True)
class OrgContext:
    """What an organisation-level handler receives: the authenticated account, already allowed the
    route's action in its organisation, and the request."""

    account: ServiceAccount
    organization_id: int
    method: str
    path_params: dict[str, str]
    body: Any
    catalog: Catalog


def _ok(results: Any = None) -> dict[str, Any]:
    return {"status": "ok"} if results is None else {"status": "ok", "results": results}


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def account_shape(account: AccountRecord) -> dict[str, Any]:
    return {
        "id": account.id,
        "username": account.username,
        "last_used": iso(account.last_used),
        "expires": iso(account.expires_at),
        "creator": account.creator,
        "created": iso(account.created_at),
        "user": account.id,
        "role": account.role.value,
        "projects": [{"id": p, "role": r.value} for p, r in account.projects.items()],
    }


# --- parsing ----------------------------------------------------------------------------------------


def _object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return body


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise BadRequest(f"{what} must be a positive integer, got {value!r}")
    return value


def _role(value: Any, what: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        raise BadRequest(f"{what} must be one of {', '.join(r.value for r in Role)}, got {value!r}") from exc


def _id_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{what} must be a non-empty list of ids")
    if len(value) > MAX_IDS_PER_REQUEST:
        raise BadRequest(f"{what} has {len(value)} ids; at most {MAX_IDS_PER_REQUEST} per request")
    return [_integer(v, f"{what} item") for v in value]


def parse_expires(value: Any) -> float | None:
    """`expires`: an ISO 8601 date-time (a `Z` or an offset; without one, UTC) or a date, or null (never)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"expires must be an ISO 8601 date-time such as 2030-01-15T00:00:00Z, got {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BadRequest(f"expires must be an ISO 8601 date-time such as 2030-01-15T00:00:00Z, got {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch = moment.timestamp()
    if not math.isfinite(epoch):
        raise BadRequest(f"expires out of range: {value!r}")
    if epoch <= time.time():
        raise BadRequest(f"expires must be in the future, got {value!r}")
    return epoch


def _project_roles(value: Any, caller: ServiceAccount) -> list[tuple[int, Role]]:
    if not isinstance(value, list):
        raise BadRequest('projects must be a list of {"id": PROJECT_ID, "role": ROLE}')
    if len(value) > MAX_IDS_PER_REQUEST:
        raise BadRequest(f"projects has {len(value)} items; at most {MAX_IDS_PER_REQUEST} per request")
    roles: list[tuple[int, Role]] = []
    for item in value:
        entry = _object(item, frozenset({"id", "role"}))
        if "id" not in entry or "role" not in entry:
            raise BadRequest('every item of projects needs "id" and "role"')
        role = _role(entry["role"], "projects[].role")
        _may_grant(caller, role)
        roles.append((_integer(entry["id"], "projects[].id"), role))
    return roles


def _may_grant(caller: ServiceAccount, role: Role) -> None:
    """No account gives a role above its own organisation role (an admin makes no owners)."""
    if not outranks(caller.role, role):
        raise Forbidden(
            f"service account {caller.username!r} with the {caller.role.value} role may not grant {role.value}"
        )


def _username(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MissingParameter("username")
    if len(value) > MAX_USERNAME_LENGTH:
        raise BadRequest(f"username is at most {MAX_USERNAME_LENGTH} characters")
    if ":" in value or any(ord(c) < 32 for c in value):
        # HTTP Basic splits user and secret at the first colon: such a name could never log in.
        raise BadRequest("username may not contain a colon or control characters")
    return value


def _account_id(ctx: OrgContext) -> int:
    raw = ctx.path_params.get("service_account_id", "")
    if not (raw.isascii() and raw.isdigit()):
        raise NotFound(f"no service account with id {raw} in organization {ctx.organization_id}")
    return int(raw)


# --- handlers ---------------------------------------------------------------------------------------

_CREATE_FIELDS = frozenset({"username", "role", "expires", "projects"})


def collection(ctx: OrgContext) -> dict[str, Any]:
    store = AccountStore(ctx.catalog)
    if ctx.method == "GET":
        return _ok([account_shape(a) for a in store.in_organization(ctx.organization_id)])
    body = _object(ctx.body, _CREATE_FIELDS)
    username = _username(body.get("username"))
    role = _role(body.get("role", Role.CONSUMER.value), "role")
    _may_grant(ctx.account, role)
    expires_at = parse_expires(body.get("expires"))
    projects = _project_roles(body.get("projects", []), ctx.account)
    account, secret = store.create(
        ctx.organization_id,
        username=username,
        role=role,
        expires_at=expires_at,
        projects=projects,
        creator=ctx.account.id,
    )
    return _ok({**account_shape(account), "token": secret})


def item(ctx: OrgContext) -> dict[str, Any]:
    store = AccountStore(ctx.catalog)
    account = store.get(ctx.organization_id, _account_id(ctx))
    if ctx.method == "DELETE":
        _may_grant(ctx.account, account.role)  # an admin deletes no owner
        if account.id == ctx.account.id:
            # It would lock its caller out mid-script; another admin, or the CLI, can.
            raise BadRequest("a service account cannot delete itself (use another admin or owner account, or the CLI)")
        store.delete(account)
        return _ok()
    return _ok(account_shape(account))


def add_to_project(ctx: OrgContext) -> dict[str, Any]:
    body = _object(ctx.body, frozenset({"service_account_ids", "projects"}))
    if "service_account_ids" not in body:
        raise MissingParameter("service_account_ids")
    if "projects" not in body:
        raise MissingParameter("projects")
    ids = _id_list(body["service_account_ids"], "service_account_ids")
    projects = _project_roles(body["projects"], ctx.account)
    if not projects:
        raise BadRequest("projects must list at least one project")
    AccountStore(ctx.catalog).add_to_projects(ctx.organization_id, ids, projects)
    return _ok()


def remove_from_project(ctx: OrgContext) -> dict[str, Any]:
    body = _object(ctx.body, frozenset({"projects"}))
    if "projects" not in body:
        raise MissingParameter("projects")
    if not isinstance(body["projects"], list) or not body["projects"]:
        raise BadRequest('projects must be a non-empty list of {"id": PROJECT_ID, "service_account_ids": [...]}')
    if len(body["projects"]) > MAX_IDS_PER_REQUEST:
        raise BadRequest(f"projects has {len(body['projects'])} items; at most {MAX_IDS_PER_REQUEST} per request")
    removals: list[tuple[int, list[int]]] = []
    for entry in body["projects"]:
        fields = _object(entry, frozenset({"id", "service_account_ids"}))
        if "id" not in fields or "service_account_ids" not in fields:
            raise BadRequest('every item of projects needs "id" and "service_account_ids"')
        removals.append(
            (_integer(fields["id"], "projects[].id"), _id_list(fields["service_account_ids"], "service_account_ids"))
        )
    AccountStore(ctx.catalog).remove_from_projects(ctx.organization_id, removals)
    return _ok()


def project_accounts(ctx: AppContext) -> dict[str, Any]:
    """GET /api/app/projects/{projectId}/service-accounts: the accounts with a role on the project."""
    listed = AccountStore(ctx.catalog).in_project(ctx.project.id)
    return _ok([{**account_shape(a), "role": role.value} for a, role in listed])
