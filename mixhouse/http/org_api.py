"""Organisation-level App API routes (`/api/app/organizations/{organization_id}/...`): the Service
Accounts API. No project in the path, so the caller must be a service account (a project secret
manages one project, not an organisation); its organisation role is checked against the route's
action (the same table as every other route, mixhouse/http/permissions.py), then the organisation in
the path must be its own. Errors use the App envelope `{"status": "error", "error": ...}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mixhouse.accounts import api as accounts
from mixhouse.catalog import Catalog
from mixhouse.domain.auth import AUTH_FAILED, parse_basic
from mixhouse.domain.permissions import Action, require
from mixhouse.domain.project import ServiceAccount
from mixhouse.errors import Forbidden, NotFound, Unauthorized
from mixhouse.http.endpoint import Auth, Endpoint
from mixhouse.http.incoming import read_incoming, reject_nul, reject_nul_in_json
from mixhouse.http.permissions import action_for
from mixhouse.http.responses import Family, json_response

OrgHandler = Callable[[accounts.OrgContext], Any]


def _account(catalog: Catalog, authorization: str | None) -> ServiceAccount:
    credentials = parse_basic(authorization)
    if credentials is None or not credentials.user:
        raise Unauthorized("Unable to authenticate request: no credentials were given")
    if not credentials.password:
        if catalog.project_by_secret(credentials.user) is not None or catalog.project_by_token(credentials.user):
            raise Unauthorized(
                "Unable to authenticate request: organization routes take a service account, not project credentials"
            )
        raise Unauthorized(AUTH_FAILED)
    account = catalog.verify_service_account(credentials.user, credentials.password)
    if account is None:
        raise Unauthorized(AUTH_FAILED)
    return account


def org_endpoint(handler: OrgHandler) -> Callable[[Request], Any]:
    async def run(request: Request) -> Response:
        incoming = await read_incoming(request)
        request.state.params = incoming.params
        reject_nul(incoming.params)
        reject_nul_in_json(incoming.json_body)
        catalog: Catalog = request.app.state.catalog
        account = await run_in_threadpool(_account, catalog, request.headers.get("authorization"))
        route = request.scope.get("route")
        require(
            account.role, action_for(str(getattr(route, "path", request.url.path)), request.method), account.username
        )
        path_params = {k: str(v) for k, v in request.path_params.items()}
        raw_org = path_params.get("organization_id", "")
        if not (raw_org.isascii() and raw_org.isdigit()):
            raise NotFound(f"no organization with id {raw_org}")
        organization_id = int(raw_org)
        if organization_id != account.organization_id:
            raise Forbidden(f"service account {account.username!r} does not belong to organization {organization_id}")
        ctx = accounts.OrgContext(
            account=account,
            organization_id=organization_id,
            method=request.method,
            path_params=path_params,
            body=incoming.json_body,
            catalog=catalog,
        )
        payload = await run_in_threadpool(handler, ctx)
        return json_response(payload)

    return run


def org_route(path: str, handler: OrgHandler, methods: list[str], writes: Action = Action.MANAGE) -> Endpoint:
    """`path` is relative to /api/app/organizations/{organization_id}. Reads (GET) are Action.READ, the
    other methods `writes` (creating, deleting and changing membership: admins and owners)."""
    return Endpoint(
        "/api/app/organizations/{organization_id}" + path,
        tuple(methods),
        org_endpoint(handler),
        Family.APP,
        Auth.ORGANIZATION,
        actions={m: Action.READ if m in ("GET", "HEAD") else writes for m in methods},
    )


# Part of the route table (mixhouse/http/routes.py).
ORG_ROUTES: list[Endpoint] = [
    org_route("/service-accounts", accounts.collection, ["GET", "POST"]),
    org_route("/service-accounts/add-to-project", accounts.add_to_project, ["POST"]),
    org_route("/service-accounts/remove-from-project", accounts.remove_from_project, ["POST"]),
    org_route("/service-accounts/{service_account_id}", accounts.item, ["GET", "DELETE"]),
]
