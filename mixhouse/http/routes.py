"""The route table: every endpoint of the server, declared once (`Endpoint`: path, methods, API family,
rate-limit budget, auth mode, role action per method). The Query and App APIs keep their sub-tables
(query_api.py, app_api.py: one line per endpoint) and are part of it.

Everything that needs to know about an endpoint reads it from here: the Starlette routes (`routes()`),
the rate limiter (`lookup(path).api`), the permissions (`mixhouse.http.permissions.action_for`),
/openapi.json, and the isolation and role tests. `family_of` gives the envelope of answers made before or
without a handler. tests/test_architecture.py checks that no route is declared anywhere else.
"""

from __future__ import annotations

import re
from functools import cache

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, compile_path

from mixhouse.domain.limits import Api
from mixhouse.domain.permissions import Action
from mixhouse.errors import NotFound
from mixhouse.gdpr import http as gdpr_http
from mixhouse.http import export, flags, ingest, observability, openapi
from mixhouse.http.app_api import APP_ROUTES
from mixhouse.http.app_routes import app_route
from mixhouse.http.endpoint import Auth, Endpoint, Mounted, endpoint
from mixhouse.http.org_api import ORG_ROUTES
from mixhouse.http.query_api import QUERY_ROUTES
from mixhouse.http.responses import Family
from mixhouse.lookup import http as lookup_http
from mixhouse.pipelines import http as pipelines_http
from mixhouse.web import dashboards
from mixhouse.web import routes as web

BOTH = ("GET", "POST")
SAVE = Action.SAVE

ENDPOINTS: list[Endpoint] = [
    # Ingestion (docs/ingestion.md)
    Endpoint("/track", BOTH, ingest.track, Family.TRACK, Auth.RECORD_TOKEN),
    Endpoint("/engage", BOTH, ingest.engage, Family.TRACK, Auth.RECORD_TOKEN),
    Endpoint("/groups", BOTH, ingest.groups, Family.TRACK, Auth.RECORD_TOKEN),
    Endpoint(
        "/import", BOTH, ingest.import_, Family.IMPORT, Auth.IMPORT, Api.INGESTION, dict.fromkeys(BOTH, Action.IMPORT)
    ),
    # Raw export (docs/export.md)
    Endpoint(
        "/api/2.0/export", BOTH, export.export, Family.QUERY, Auth.QUERY, Api.EXPORT, dict.fromkeys(BOTH, Action.READ)
    ),
    # Operations (docs/operations.md)
    Endpoint("/healthz", ("GET",), observability.healthz, None, Auth.NONE),
    Endpoint("/metrics", ("GET",), observability.metrics, None, Auth.NONE),
    Endpoint("/readyz", ("GET",), observability.readyz, None, Auth.NONE),
    Endpoint(openapi.PATH, ("GET",), openapi.openapi, None, Auth.NONE),
    # Feature flag evaluation (docs/flags.md)
    Endpoint("/flags", ("GET",), flags.flags, Family.APP, Auth.FLAGS),
    Endpoint("/flags/definitions", ("GET",), flags.definitions, Family.APP, Auth.FLAGS),
    # Query API (query_api.py) and App API (app_api.py)
    *QUERY_ROUTES,
    *APP_ROUTES,
    *ORG_ROUTES,  # /api/app/organizations/{id}/service-accounts (docs/auth.md)
    # GDPR v3 (docs/gdpr.md) and lookup tables (docs/lookup-tables.md)
    *gdpr_http.ENDPOINTS,
    *lookup_http.ENDPOINTS,
    # Data pipelines (docs/pipelines.md)
    *pipelines_http.ENDPOINTS,
    # The web app (docs/web.md)
    Endpoint("/", ("GET",), web.page, None, Auth.NONE),
    Endpoint("/web/login", ("POST",), web.login, Family.APP, Auth.LOGIN),
    Endpoint("/web/logout", ("POST",), web.logout, Family.APP, Auth.SESSION),
    Endpoint("/web/session", ("GET",), web.session, Family.APP, Auth.SESSION),
    app_route("/dashboards", dashboards.dashboards_collection, ["GET", "POST"], writes=SAVE),
    app_route("/dashboards/{dashboard_id}", dashboards.dashboard_item, ["GET", "PATCH", "DELETE"], writes=SAVE),
]
MOUNTS: list[Mounted] = [Mounted("/static", web.STATIC_APP, "static")]


class TableRoute(Route):
    """A Starlette route made from a row of the table (`spec`)."""

    def __init__(self, spec: Endpoint) -> None:
        handler = endpoint(spec.handler, spec.family) if spec.family is not None else spec.handler
        super().__init__(spec.path, handler, methods=list(spec.methods))
        self.spec = spec


class TableMount(Mount):
    def __init__(self, spec: Mounted) -> None:
        super().__init__(spec.path, app=spec.app, name=spec.name)
        self.spec = spec


def routes() -> list[BaseRoute]:
    """The application's routes, in table order."""
    return [*(TableRoute(e) for e in ENDPOINTS), *(TableMount(m) for m in MOUNTS)]


# -- lookups ---------------------------------------------------------------------------------------------


@cache
def _index() -> tuple[dict[str, list[Endpoint]], list[tuple[re.Pattern[str], Endpoint]]]:
    static: dict[str, list[Endpoint]] = {}
    templated: list[tuple[re.Pattern[str], Endpoint]] = []
    for e in ENDPOINTS:
        if "{" in e.path:
            templated.append((compile_path(e.path)[0], e))
        else:
            static.setdefault(e.path, []).append(e)
    return static, templated


def matches(path: str) -> list[Endpoint]:
    """The endpoints whose path template matches `path` (several when methods are split across rows)."""
    static, templated = _index()
    found = static.get(path)
    if found is not None:
        return found
    return [e for pattern, e in templated if pattern.match(path)]


def lookup(path: str) -> Endpoint | None:
    """The endpoint a request path goes to (any of its rows: they share family, auth and budget)."""
    found = matches(path)
    return found[0] if found else None


async def _unrouted(request: Request) -> Response:
    raise NotFound(f"Invalid endpoint: {request.url.path}")


def _budget(pattern: str, family: Family, auth: Auth, api: Api) -> tuple[re.Pattern[str], Endpoint]:
    return re.compile(pattern), Endpoint(pattern, (), _unrouted, family, auth, api)


# The budgets of whole API families, by path: they also cover a path no endpoint serves (the router
# answers it 404 after the limiter counted it, as Mixpanel counts any call to the API) and an endpoint
# that declares no budget of its own.
BUDGETS: tuple[tuple[re.Pattern[str], Endpoint], ...] = (
    _budget(r"^/api/(query|2\.0)/jql$", Family.QUERY, Auth.QUERY, Api.JQL),
    _budget(r"^/api/(query|2\.0)/", Family.QUERY, Auth.QUERY, Api.QUERY),
    _budget(r"^/api/app/(data-retrievals|data-deletions)", Family.APP, Auth.GDPR, Api.GDPR),
    _budget(r"^/api/app/projects/(?P<project_id>[^/]+)/schemas", Family.APP, Auth.APP, Api.LEXICON),
)


def budget_of(path: str) -> Endpoint | None:
    """The endpoint whose budget a request to `path` spends: its own (when it declares one), else its API
    family's (BUDGETS); None when the path spends none."""
    spec = lookup(path)
    if spec is not None and spec.api is not None:
        return spec
    return next((budget for pattern, budget in BUDGETS if pattern.match(path)), None)


def path_params(path: str, spec: Endpoint) -> dict[str, str]:
    """The parameters `path` gives `spec`'s path template (or its budget's pattern)."""
    family_pattern = next((pattern for pattern, budget in BUDGETS if budget is spec), None)
    if family_pattern is not None:
        found = family_pattern.match(path)
        return {k: v for k, v in found.groupdict().items() if v is not None} if found else {}
    match = compile_path(spec.path)[0].match(path)
    return dict(match.groupdict()) if match else {}


# Answers made before or without a handler (404, 405, a connection-level refusal, a throttled login)
# use the family of the path's prefix, so that a mistyped /import/x still gets /import's envelope.
# Paths under none of these prefixes (/flags, /web, /healthz, ...) get the Query API's.
UNROUTED_FAMILIES: tuple[tuple[str, Family], ...] = (
    ("/api/app", Family.APP),
    ("/api/2.0/nessie", Family.APP),  # data pipelines (mixhouse/pipelines/http.py)
    ("/import", Family.IMPORT),
    ("/track", Family.TRACK),
    ("/engage", Family.TRACK),
    ("/groups", Family.TRACK),
)


def family_of(path: str) -> Family:
    """The API family whose envelope answers `path` when no handler does (see UNROUTED_FAMILIES)."""
    for prefix, family in UNROUTED_FAMILIES:
        if path.startswith(prefix):
            return family
    return Family.QUERY
