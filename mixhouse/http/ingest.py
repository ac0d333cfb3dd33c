"""/track, /engage, /groups and /import: decode, hand to the domain, wait for the fsync, answer."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope

from mixhouse.catalog_cache import CatalogView
from mixhouse.domain import ingestion, payloads
from mixhouse.domain.auth import Via
from mixhouse.domain.events import Endpoint, IngestContext
from mixhouse.domain.payloads import decode_data
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, Forbidden
from mixhouse.http.acks import acknowledged
from mixhouse.http.callers import caller_for
from mixhouse.http.endpoint import Auth, Direct
from mixhouse.http.incoming import Incoming, header, read_incoming
from mixhouse.http.responses import Fixed, json_response, jsonp, valid_callback
from mixhouse.lexicon.effects import DroppedEvents, Drops
from mixhouse.workers import ImportWorkers

# A 1x1 transparent GIF, for img=1 (tracking pixels).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

# The plain tracking replies, made once (mixhouse/http/responses.py `Fixed`).
ONE = Fixed(b"1", media_type="text/plain")
ZERO = Fixed(b"0", media_type="text/plain")


def _records(incoming: Incoming) -> list[Any]:
    data = incoming.get("data")
    if data is not None and data != "":
        return ingestion.records_from(decode_data(data))
    if incoming.json_body is not None:
        return ingestion.records_from(incoming.json_body)
    raise BadRequest("data, missing or empty")


async def _commit(engine: Engine, batch: WriteBatch, state: dict[str, Any] | None = None) -> None:
    """Hand `batch` to the writer and wait for its fsync; `state`: the request's scope state, which gets
    the access log's `project`."""
    if state is not None and batch.project_id is not None:
        state["project_id"] = batch.project_id
    if len(batch):
        await acknowledged(engine.submit(batch))  # once the writer's commit is on disk (mixhouse/http/acks.py)


def api_host(header: str | None) -> str:
    """The host of a `Host` header without its port: `api.example.com`, `127.0.0.1`, or an IPv6
    literal in its brackets (`[::1]`), as it would be written in a URL."""
    value = (header or "").strip()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else "127.0.0.1"
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value or "127.0.0.1"


def _context(request: Request, incoming: Incoming, endpoint: Endpoint) -> IngestContext:
    scope = request.scope
    client = scope.get("client")  # what request.client.host reads, without the Address it builds
    return IngestContext(
        endpoint=endpoint,
        received_ms=int(time.time() * 1000),
        api_host=api_host(header(scope, b"host")),
        client_ip=client[0] if client else None,
        use_ip=incoming.flag("ip"),
        geo=scope["app"].state.geo,
        # /track locates by the request's address unless ?ip=0 (why Mixpanel's server-side SDKs send it);
        # /import, a bulk load from some server, only when asked with ?ip=1.
        locate_request=incoming.flag("ip", default=endpoint is Endpoint.TRACK),
    )


def _track_reply(incoming: Incoming, result: ingestion.IngestResult) -> Response:
    """Mixpanel's tracking replies: 1/0, verbose JSON, strict per-record errors, JSONP, pixel, redirect."""
    ok = result.accepted > 0 or (not result.failed and not result.failed_messages)
    if incoming.flag("strict") and (result.failed or result.failed_messages):
        return _strict_failure(result)
    redirect = incoming.get("redirect")
    if redirect:
        return RedirectResponse(redirect, status_code=302)
    if incoming.flag("img"):
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-cache, no-store"})
    verbose = incoming.get("verbose") in ("1", "2", "true")
    payload: Any
    if verbose:
        payload = {"status": 1, "error": None} if ok else {"status": 0, "error": result.first_error}
        if incoming.json_body is not None and not ok:
            payload["failed_records"] = result.failed
    else:
        payload = 1 if ok else 0
    callback = valid_callback(incoming.get("callback"))
    if callback:
        return jsonp(callback, payload)
    if verbose:
        if incoming.json_body is not None and ok:
            payload["num_good_events"] = result.accepted
        return json_response(payload, 400 if not ok and incoming.get("verbose") == "2" else 200)
    return ONE if ok else ZERO


def _strict_failure(result: ingestion.IngestResult) -> Response:
    return json_response(
        {
            "code": 400,
            "error": "some data points in the request failed validation",
            "status": "Bad Request",
            "num_records_imported": result.accepted,
            "failed_records": result.failed_messages or result.failed,
        },
        400,
    )


def _dropped_by(catalog: CatalogView) -> Callable[[int], Drops]:
    """A project's Lexicon drops, kept until the catalog changes."""
    return lambda project_id: catalog.remember(("drops", project_id), lambda: DroppedEvents(catalog)(project_id))


async def _track(scope: Scope, receive: Receive) -> Response:
    request = Request(scope, receive)
    incoming = await read_incoming(request)
    state = scope["state"]  # (read_incoming made it) Request.state's dict, without the wrapper
    state["params"] = incoming.params
    app_state = scope["app"].state
    catalog: CatalogView = app_state.cached_catalog.current()
    context = _context(request, incoming, Endpoint.TRACK)
    result = ingestion.track(catalog, _records(incoming), context, _dropped_by(catalog))
    await _commit(app_state.engine, result.batch, state)
    return _track_reply(incoming, result)


async def _profiles(scope: Scope, receive: Receive, *, group: bool) -> Response:
    request = Request(scope, receive)
    incoming = await read_incoming(request)
    state = scope["state"]
    state["params"] = incoming.params
    app_state = scope["app"].state
    catalog: CatalogView = app_state.cached_catalog.current()
    client = scope.get("client")
    result = ingestion.update_profiles(
        catalog,
        _records(incoming),
        group=group,
        received_ms=int(time.time() * 1000),
        geo=app_state.geo,
        request_ip=client[0] if client else None,
        ip_param_off=incoming.get("ip") == "0",
    )
    await _commit(app_state.engine, result.batch, state)
    return _track_reply(incoming, result)


async def _engage(scope: Scope, receive: Receive) -> Response:
    return await _profiles(scope, receive, group=False)


async def _groups(scope: Scope, receive: Receive) -> Response:
    return await _profiles(scope, receive, group=True)


# The tracking endpoints take one small request per event from every SDK: they speak ASGI themselves
# (mixhouse/http/endpoint.py `Direct`), past Starlette's request/response wrappers.
track = Direct(_track)
engage = Direct(_engage)
groups = Direct(_groups)


async def import_(request: Request) -> Response:
    incoming = await read_incoming(request, defer_array=True)
    request.state.params = incoming.params
    caller = caller_for(request, Auth.IMPORT, incoming.params)
    request.state.project_id = caller.project.id  # the access log's `project`
    if not caller.role.may_import:
        raise Forbidden("importing events needs an owner or admin service account")
    # $merge needs the project secret or a service account, not the public token (https://developer.mixpanel.com/reference/identity-merge).
    ctx = replace(
        _context(request, incoming, Endpoint.IMPORT), merge_allowed=caller.via not in (Via.TOKEN, Via.API_KEY)
    )
    dropped = DroppedEvents(request.app.state.catalog)(caller.project.id)  # Lexicon schemas marked dropped
    if incoming.deferred:  # a JSON array: a large one may be validated by a worker process (mixhouse/workers)
        workers: ImportWorkers = request.app.state.import_workers
        # (A `data` parameter, which wins over the body in `_records`, or a Lexicon drop: the ordinary path.)
        if (
            workers.takes(len(incoming.body))
            and not incoming.get("data")
            and not (dropped.events or dropped.properties)
        ):
            columns = await workers.columns(incoming.body, caller.project, ctx)
            if columns is not None:  # every event valid and stored as sent: the plain success reply
                await _commit(request.app.state.engine, WriteBatch(columns=[columns]))
                return json_response({"code": 200, "num_records_imported": len(columns), "status": "OK"})
        incoming.json_body = payloads.parse_json_body(incoming.body)
    records = _records(incoming)
    result = ingestion.import_events(caller.project, records, ctx, dropped)
    strict = incoming.flag("strict", default=True)
    if result.failed_messages:
        return _strict_failure(result)
    await _commit(request.app.state.engine, result.batch)
    if result.failed and strict:
        return _strict_failure(result)
    if incoming.json_body is None and incoming.get("strict") is None:
        # The legacy `data=` form or GET (SDKs that send no strict) reads the tracking replies: the
        # PyPI SDK (verbose=1) {"status": 1, "error": null}, the npm SDK (verbose=0) exactly `1`.
        if incoming.get("verbose") in ("1", "true"):
            return json_response({"status": 1, "error": None})
        return Response(b"1", media_type="text/plain")
    return json_response({"code": 200, "num_records_imported": result.accepted, "status": "OK"})
