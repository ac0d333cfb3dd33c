"""The ASGI application: routes, each with the error envelope of its API family."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mixhouse.compose import check_engine, open_catalog, open_engine
from mixhouse.errors import MethodNotAllowed, NotFound
from mixhouse.flags.cohorts import CohortMembers
from mixhouse.geo import open_locator
from mixhouse.http import export, flags, ingest, observability, openapi
from mixhouse.http.credentials import CredentialCheck
from mixhouse.http.endpoint import endpoint
from mixhouse.http.limits import RateLimits
from mixhouse.http.middleware import Cors, TrailingSlash
from mixhouse.http.responses import Family, error_response, family_of
from mixhouse.settings import Settings
from mixhouse.web.throttle import LoginThrottle


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(family_of(request.url.path), request, NotFound(f"Invalid endpoint: {request.url.path}"))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}")
    return error_response(family_of(request.url.path), request, err)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def routes() -> list[BaseRoute]:
    from mixhouse.http.app_api import APP_ROUTES
    from mixhouse.http.query_api import QUERY_ROUTES
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
        *WEB_ROUTES,
    ]


def create_app(settings: Settings | Path, geoip: str | None = None) -> Starlette:
    """The application for these settings (a bare data folder: every other setting at its default; `geoip`
    overrides the setting: `builtin`, `off`, or the path of a MaxMind DB file, see mixhouse.geo). Bad
    settings raise here, before anything is opened."""
    if not isinstance(settings, Settings):
        settings = Settings(data_dir=settings)
    if geoip is not None:
        settings = replace(settings, geoip=geoip)
    check_engine(settings)
    locator = open_locator(settings.geoip)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.geo = locator
        app.state.catalog = open_catalog(settings)
        app.state.engine = open_engine(settings, commit_observers=(observability.observe_commit,))
        observability.install(app.state.engine, access_log_on=settings.access_log)
        try:
            yield
        finally:
            app.state.engine.close()

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.settings = settings
    app.state.flag_cohorts = CohortMembers(settings.flags_cohort_ttl_s)
    app.state.login_throttle = LoginThrottle(settings.web_login_failures)
    app.add_middleware(RateLimits, on_limited=observability.rate_limited)
    app.add_middleware(CredentialCheck, per_minute=settings.auth_failures_per_minute)
    app.add_middleware(Cors)
    app.add_middleware(observability.AccessLog)
    app.add_middleware(TrailingSlash)
    return app
