"""What an operator sees: one JSON access-log line per request, Prometheus metrics at /metrics, and
/readyz (ready to take writes) beside /healthz (the process answers).

The access log goes to stderr through the `mixhouse.access` logger; it never logs query strings or
bodies (they carry secrets, signatures and user data). The access_log setting (MIXHOUSE_ACCESS_LOG=0)
turns it off. Engine figures come from the engine port (`stats()`, `health()`, `warming()`) and commit
observations from `observe_commit`, which the app passes to the engine when it opens it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixhouse.domain.limits import Api
from mixhouse.engine.base import Commit, Engine
from mixhouse.http.responses import json_response

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the output and nobody graphs them
REGISTRY = CollectorRegistry()
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)

REQUESTS = Counter(
    "mixhouse_http_requests", "HTTP requests answered", ["method", "endpoint", "status"], registry=REGISTRY
)
REQUEST_SECONDS = Histogram(
    "mixhouse_http_request_duration_seconds",
    "Time from request to the end of the response, by route (query latency by endpoint)",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RATE_LIMITED = Counter("mixhouse_rate_limited", "Requests answered 429, by API", ["api"], registry=REGISTRY)
INGESTED_EVENTS = Counter("mixhouse_ingested_events", "Events committed to the store", registry=REGISTRY)
INGESTED_PROFILE_UPDATES = Counter(
    "mixhouse_ingested_profile_updates", "User and group profile updates committed", registry=REGISTRY
)
COMMIT_SECONDS = Histogram(
    "mixhouse_commit_duration_seconds",
    "One group commit: write plus the fsync that acknowledges it",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
QUEUE_ROWS = Gauge("mixhouse_write_queue_rows", "Rows waiting for the writer", registry=REGISTRY)

access_log = logging.getLogger("mixhouse.access")
log = logging.getLogger(__name__)


class _AccessLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The access log's own handler (what `install` adds): while it is the logger's only one, a line is
    written straight to its stream, without a LogRecord (the logging machinery, the caller's frame looked
    up included, was a tenth of a /track request's time on the event loop).

    The lines of the requests that end in one turn of the event loop are written together when it ends:
    a group commit acknowledges a dozen /track requests at once, and their lines cost one write(2), not one
    each (each write also let the writer thread take the interpreter lock from the event loop)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def write_line(self, line: str) -> None:
        self._pending.append(line)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._write_pending)
            except RuntimeError:  # no event loop on this thread: now
                self._write_pending()

    def _write_pending(self) -> None:
        lines, self._pending = self._pending, []
        try:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(self.terminator.join(lines) + self.terminator)
                self.flush()
        except Exception:  # a log line must never fail the requests it describes
            log.exception("writing %d access-log lines failed", len(lines))


_lines: _AccessLines | None = None  # the handler `install` added, if it did


def observe_commit(commit: Commit) -> None:
    """The engine's commit observer (passed to it when it opens)."""
    COMMIT_SECONDS.observe(commit.seconds)
    INGESTED_EVENTS.inc(commit.events)
    INGESTED_PROFILE_UPDATES.inc(commit.profile_updates)


def install(engine: Engine, *, access_log_on: bool) -> None:
    """Hook the metrics to this process's engine (called once the engine is open)."""
    QUEUE_ROWS.set_function(lambda: float(engine.stats().pending_rows))
    global _lines
    if access_log_on and not access_log.handlers:
        handler = _AccessLines(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
        _lines = handler


def _write_access_line(line: str) -> None:
    handlers = access_log.handlers
    if _lines is not None and len(handlers) == 1 and handlers[0] is _lines and not access_log.disabled:
        _lines.write_line(line)
    else:
        access_log.info(line)


# Each series' child, by its label values: `labels()` takes a lock and hashes its arguments every time.
_request_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _series(method: str, endpoint: str, status: str) -> tuple[Any, Any]:
    key = (method, endpoint, status)
    series = _request_series.get(key)
    if series is None:
        # Bounded: methods and statuses are uvicorn's, endpoints the route templates (or "unmatched").
        series = _request_series[key] = (REQUESTS.labels(method, endpoint, status), REQUEST_SECONDS.labels(endpoint))
    return series


def rate_limited(api: Api) -> None:
    RATE_LIMITED.labels(api.value).inc()


def _endpoint_label(scope: Scope) -> str:
    """The route template (bounded label values), also for requests answered before routing (429)."""
    route = scope.get("route")
    if route is None and "app" in scope:
        route = next((r for r in scope["app"].routes if r.matches(scope)[0] is Match.FULL), None)
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class AccessLog:
    """Outermost but one (inside TrailingSlash, so the matched route is visible): times every request,
    counts it, and writes its access-log line once the last body byte is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent_bytes = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status, sent_bytes
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            seconds = time.perf_counter() - started
            counted, timed = _series(scope["method"], _endpoint_label(scope), str(status))
            counted.inc()
            timed.observe(seconds)
            if access_log.handlers:
                try:
                    _write_access_line(_line(scope, status, seconds, sent_bytes))
                except Exception:  # a log line must never fail the request it describes
                    log.exception("access log line for %s %s failed", scope["method"], scope["path"])


def _line(scope: Scope, status: int, seconds: float, sent_bytes: int) -> str:
    # The project the request acted on: the authenticated one (or a tracking request's token's), else
    # the one the path (App API) or the parameters name.
    state: dict[str, Any] = scope.get("state") or {}
    project = state.get("project_id")
    if project is None:
        project = (scope.get("path_params") or {}).get("project_id")
    params = state.get("params")
    if project is None and isinstance(params, dict):
        project = params.get("project_id")
    return orjson.dumps(
        {
            "ts": round(time.time(), 3),
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "project": _as_project(project),
            "bytes": sent_bytes,
        }
    ).decode()


def _as_project(value: object) -> int | None:
    """A project id as the log shows it: an integer a project can have (signed 64-bit), else null. A
    `project_id=2**64` parameter must not make the line unserialisable (and so lost)."""
    try:
        number = int(str(value)) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and -(2**63) <= number < 2**63 else None


async def healthz(request: Request) -> Response:
    """200 `ok` while the process answers."""
    return PlainTextResponse("ok")


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def readyz(request: Request) -> Response:
    """200 when the server can take writes and answer reads now; 503 with the reasons otherwise."""
    problems: list[str] = []
    try:
        request.app.state.catalog.connection().execute("SELECT 1").fetchone()
    except Exception as exc:
        problems.append(f"catalog: {exc}")
    engine: Engine | None = getattr(request.app.state, "engine", None)  # None before the lifespan opened it
    if engine is None:
        problems.append("the engine is not open")
    else:
        problems.extend(engine.health())
    if problems:
        return json_response({"status": "unavailable", "problems": problems}, 503)
    warming = engine.warming() if engine is not None else []
    # Still ready: writes and reads are taken; a query that needs what is warming waits for it.
    return json_response({"status": "ok", "warming": warming} if warming else {"status": "ok"})
