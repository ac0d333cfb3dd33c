"""The ASGI application: the route table's routes (mixhouse/http/routes.py), the middleware every request
passes, and the parts the composition root (mixhouse/compose.py) opens for these settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from mixhouse import heap
from mixhouse.backup.server import start_control
from mixhouse.catalog_cache import CachedCatalog
from mixhouse.cluster.limits import shared_limiter
from mixhouse.compose import check_engine, open_catalog, open_engine
from mixhouse.engine import kernels
from mixhouse.errors import MethodNotAllowed, NotFound
from mixhouse.flags.cohorts import CohortMembers
from mixhouse.geo import open_locator
from mixhouse.http import observability
from mixhouse.http.credentials import CredentialCheck
from mixhouse.http.limits import RateLimits
from mixhouse.http.middleware import Cors, DirectRoutes, TrailingSlash
from mixhouse.http.responses import error_response
from mixhouse.http.routes import family_of, routes
from mixhouse.jobs.registry import start_jobs
from mixhouse.pipelines.service import DataChanges, stop_pipelines
from mixhouse.settings import Settings
from mixhouse.web.throttle import LoginThrottle
from mixhouse.workers import ImportWorkers


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(family_of(request.url.path), request, NotFound(f"Invalid endpoint: {request.url.path}"))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}")
    return error_response(family_of(request.url.path), request, err)


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
        app.state.cached_catalog = CachedCatalog(app.state.catalog)  # tracking's lookups (mixhouse/catalog_cache.py)
        changes = DataChanges()  # pipelines' sync learns of new events here (mixhouse/pipelines)
        app.state.engine = open_engine(
            settings, commit_observers=(observability.observe_commit, changes.observe), catalog=app.state.catalog
        )
        observability.install(app.state.engine, access_log_on=settings.access_log)
        app.state.jobs = start_jobs(
            settings, app.state.catalog, app.state.engine, app.state.flag_cohorts.forget, changes
        )
        # Large /import bodies validated in other processes (mixhouse/workers), started on the first one.
        app.state.import_workers = ImportWorkers(settings.import_workers, settings.import_worker_min_bytes)
        control = start_control(settings.data_dir, app.state.engine)  # `mixhouse backup` (docs/storage.md)
        heap.freeze_after(kernels.warm)  # start-up objects out of the collector's scans (mixhouse/heap.py)
        heap.switch_interval(settings.switch_interval_seconds)  # the interpreter lock's hand-over (mixhouse/heap.py)
        try:
            yield
        finally:
            control.close()
            app.state.import_workers.close()
            stop_pipelines(app.state.jobs)
            app.state.jobs.stop()
            app.state.engine.close()

    app = Starlette(
        routes=routes(),  # the route table, mixhouse/http/routes.py
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.settings = settings
    app.state.flag_cohorts = CohortMembers(settings.flags_cohort_ttl_s)
    app.state.login_throttle = LoginThrottle(settings.web_login_failures)
    app.add_middleware(RateLimits, on_limited=observability.rate_limited, limiter=shared_limiter(settings))
    app.add_middleware(DirectRoutes, routes=app.routes)  # /track, /engage, /groups past the router
    app.add_middleware(CredentialCheck, per_minute=settings.auth_failures_per_minute)
    app.add_middleware(Cors)
    app.add_middleware(observability.AccessLog)
    app.add_middleware(TrailingSlash)
    return app
