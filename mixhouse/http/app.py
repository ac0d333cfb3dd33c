"""The ASGI application: routes, each with the error envelope of its API family."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mixhouse.catalog import Catalog
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.errors import MixhouseError, NotFound
from mixhouse.geo import open_locator
from mixhouse.http import export, flags, ingest, observability, openapi
from mixhouse.http.credentials import CredentialCheck
from mixhouse.http.endpoint import endpoint
from mixhouse.http.limits import RateLimits
from mixhouse.http.middleware import Cors, TrailingSlash
from mixhouse.http.responses import Family, error_response, family_of
from mixhouse.jobs.registry import start_jobs


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(family_of(request.url.path), request, NotFound(f"Invalid endpoint: {request.url.path}"))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = MixhouseError(f"method {request.method} is not allowed on {request.url.path}")
    err.status = 405
    return error_response(family_of(request.url.path), request, err)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def routes() -> list[BaseRoute]:
    from mixhouse.gdpr.http import ROUTES as GDPR_ROUTES
    from mixhouse.http.app_api import APP_ROUTES
    from mixhouse.http.query_api import QUERY_ROUTES
    from mixhouse.lookup.http import ROUTES as LOOKUP_ROUTES
    from mixhouse.web.routes import ROUTES as WEB_ROUTES

    both = ["GET", "POST"]
    return [
        Route("/track", endpoint(ingest.track, Family.TRACK), methods=both),
        Route("/engage", endpoint(ingest.engage, Family.TRACK), methods=both),
        Route("/groups", endpoint(ingest.groups, Family.TRACK), methods=both),
        Route("/import", endpoint(ingest.import_, Family.IMPORT), methods=both),
        Route("/api/2.0/export", endpoint(export.export, Family.QUERY), methods=both),
        Route("/healthz", healthz, methods=["GET"]),
        *observability.ROUTES,
        *openapi.ROUTES,
        *flags.ROUTES,
        *QUERY_ROUTES,
        *APP_ROUTES,
        *GDPR_ROUTES,
        *LOOKUP_ROUTES,
        *WEB_ROUTES,
    ]


def create_app(data_dir: Path, geoip: str | None = None) -> Starlette:
    """`geoip`: `builtin` (default), `off`, or the path of a MaxMind DB file (mixhouse.geo)."""
    locator = open_locator(geoip)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.geo = locator
        app.state.catalog = Catalog(data_dir)
        app.state.engine = DuckDBEngine(data_dir)
        observability.install(app.state.engine)
        app.state.data_dir = data_dir
        app.state.jobs = start_jobs(app.state.catalog, app.state.engine, data_dir)
        try:
            yield
        finally:
            app.state.jobs.stop()
            app.state.engine.close()

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.add_middleware(RateLimits, on_limited=observability.rate_limited)
    app.add_middleware(CredentialCheck)
    app.add_middleware(Cors)
    app.add_middleware(observability.AccessLog)
    app.add_middleware(TrailingSlash)
    return app
