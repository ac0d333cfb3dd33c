"""Which action each route performs (the roles that may perform it are in `mixhouse.domain.permissions`).

Each endpoint of the route table (mixhouse/http/routes.py) declares its action per method; for a method
it does not declare, the rule: reads (GET) and the Query API are READ, anything else is MANAGE (only
admins and owners), so a route added without one is closed to consumers and analysts. tests/test_roles.py
walks the live route table and calls every route with every role.
"""

from __future__ import annotations

from starlette.requests import Request

from mixhouse.domain.auth import Caller
from mixhouse.domain.permissions import Action, require

# Query API reads may be sent as POST (form or JSON parameters): still reads.
_READ_PREFIXES = ("/api/query/", "/api/2.0/")


def action_for(path: str, method: str) -> Action:
    """The action of `method` on the route whose template is `path`, as the route table declares it."""
    from mixhouse.http.routes import ENDPOINTS  # the table imports every handler, and they import this

    for spec in ENDPOINTS:
        if spec.path == path and (declared := spec.action(method)) is not None:
            return declared
    if method in ("GET", "HEAD") or path.startswith(_READ_PREFIXES):
        return Action.READ
    return Action.MANAGE


def authorize(request: Request, caller: Caller) -> None:
    """Refuse (403) a caller whose role does not include the action of the matched route."""
    request.state.project_id = caller.project.id  # the access log's `project`
    route = request.scope.get("route")
    path = str(getattr(route, "path", request.url.path))
    require(caller.role, action_for(path, request.method), caller.username)
