"""Which action each route performs (the roles that may perform it are in `mixhouse.domain.permissions`).

Explicit entries first; then the rule for a route not listed: reads (GET) of authenticated APIs are READ,
anything else on the App API is MANAGE (only admins and owners), so a route added later is closed to
consumers and analysts until it is listed here. tests/test_roles.py walks the live route table and calls
every route with every role.
"""

from __future__ import annotations

from starlette.requests import Request

from mixhouse.domain.auth import Caller
from mixhouse.domain.permissions import Action, require

_SAVED_REPORTS = ("funnels", "cohorts", "bookmarks", "dashboards", "annotations")

# (route path template, method) -> action. Methods not listed fall to the rule below.
ROUTE_ACTIONS: dict[tuple[str, str], Action] = {
    ("/import", "GET"): Action.IMPORT,
    ("/import", "POST"): Action.IMPORT,
    ("/api/2.0/export", "GET"): Action.READ,
    ("/api/2.0/export", "POST"): Action.READ,
    **{
        (f"/api/app/projects/{{project_id}}/{kind}{item}", method): Action.SAVE
        for kind in _SAVED_REPORTS
        for item, methods in (("", ("POST",)), (f"/{{{kind.rstrip('s')}_id}}", ("PATCH", "PUT", "DELETE")))
        for method in methods
    },
    ("/api/app/projects/{project_id}/annotations/tags", "POST"): Action.SAVE,
    # The legacy annotation writes take GET as well as POST: both are writes.
    **{
        (f"{prefix}/annotations/{op}", method): Action.SAVE
        for prefix in ("/api/2.0", "/api/query")
        for op in ("create", "update", "delete")
        for method in ("GET", "POST")
    },
    # GDPR requests and what they retrieve: owners and admins only (https://docs.mixpanel.com/docs/privacy/end-user-data-management).
    ("/api/app/data-retrievals/v3.0/{tracking_id}", "GET"): Action.MANAGE,
    ("/api/app/data-retrievals/v3.0/{tracking_id}/file", "GET"): Action.MANAGE,
    ("/api/app/data-deletions/v3.0/{tracking_id}", "GET"): Action.MANAGE,
}

# Query API reads may be sent as POST (form or JSON parameters): still reads.
_READ_PREFIXES = ("/api/query/", "/api/2.0/")


def action_for(path: str, method: str) -> Action:
    explicit = ROUTE_ACTIONS.get((path, method))
    if explicit is not None:
        return explicit
    if method in ("GET", "HEAD") or path.startswith(_READ_PREFIXES):
        return Action.READ
    return Action.MANAGE


def authorize(request: Request, caller: Caller) -> None:
    """Refuse (403) a caller whose role does not include the action of the matched route."""
    request.state.project_id = caller.project.id  # the access log's `project`
    route = request.scope.get("route")
    path = str(getattr(route, "path", request.url.path))
    require(caller.role, action_for(path, request.method), caller.username)
