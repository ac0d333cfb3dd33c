"""Every API call, described once and without I/O, for both clients.

An operation is a generator. It yields a `Call` (what to send: method, API family, path, parameters, body,
which credentials) and receives the decoded reply (JSON, or the text), or has the client's exception
thrown into it; what it returns is the method's result. A streaming operation (`Stream`) also yields
`Emit`s, items for the caller's iterator, and may yield a `Call` with `stream=True`, whose body's lines the
client hands to the caller as they arrive. `Client` (httpx.Client) and `AsyncClient` (httpx.AsyncClient)
drive the same generators; each of their methods is one line naming an operation here (see `_client.py`
and `_async.py`), and both send through the same request builder and retry policy (`_transport.py`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from mixhouse_client._batching import MAX_BYTES, MAX_RECORDS, Batch, Oversized, batches, loads, with_insert_id
from mixhouse_client._config import Credentials, Family, ProjectSecret, ServiceAccount, base_urls
from mixhouse_client._exceptions import BadRequest, ConfigurationError
from mixhouse_client._types import Annotation, AnnotationTag, FeatureFlag, LegacyAnnotation

T = TypeVar("T")
DateLike = date | str


class Auth(Enum):
    CREDENTIALS = "credentials"  # the service account (+ project_id) or the project secret
    TOKEN_OR_CREDENTIALS = "token"  # Basic with the project token when the client has one (/flags)
    NONE = "none"  # the token travels in the body (/track, /engage, /groups)
    BEARER = "bearer"  # the GDPR API's OAuth token (Authorization: Bearer), else the credentials


@dataclass(frozen=True)
class Call:
    method: str
    family: Family
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    auth: Auth = Auth.CREDENTIALS
    stream: Callable[[bytes], Any] | None = None  # stream the body's lines, each through this
    once: bool = False  # not idempotent (a create): not sent again once it may have reached the server


@dataclass(frozen=True)
class Emit(Generic[T]):
    items: Sequence[T]


Flow = Generator[Call, Any, T]
Stream = Generator[Call | Emit[T], Any, None]


@dataclass(frozen=True)
class FailedRecord:
    """A record the server refused (or that could not be sent). `index` counts from 0 over the whole input."""

    index: int | None
    insert_id: str | None
    field: str | None
    message: str


@dataclass
class IngestResult:
    """What an ingestion call did: records accepted, and those refused with the reason."""

    accepted: int = 0
    failed: list[FailedRecord] = field(default_factory=list)
    requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


class Settings:
    """What both clients know: where each API family is, and the credentials."""

    def __init__(
        self,
        base_url: str | None,
        region: str,
        credentials: Credentials | None,
        token: str | None,
        gzip_level: int,
        workspace_id: int | None,
        gdpr_token: str | None = None,
    ) -> None:
        self._urls = base_urls(base_url, region)
        self.credentials = credentials
        self.token = token
        self.gdpr_token = gdpr_token
        self.gzip_level = gzip_level
        self.workspace_id = workspace_id

    def _auth(self) -> tuple[httpx.BasicAuth, dict[str, str]]:
        """Basic auth and the `project_id` parameter the credentials need."""
        creds = self.credentials
        if isinstance(creds, ServiceAccount):
            if not creds.project_id:
                raise ConfigurationError("a service account needs a project_id")
            return httpx.BasicAuth(creds.username, creds.secret), {"project_id": str(creds.project_id)}
        if isinstance(creds, ProjectSecret):
            return httpx.BasicAuth(creds.secret, ""), {}
        raise ConfigurationError("this call needs credentials: a ServiceAccount or a ProjectSecret")

    def _project_id(self) -> int:
        creds = self.credentials
        project_id = creds.project_id if creds is not None else None
        if not project_id:
            raise ConfigurationError("this call needs the project id (ServiceAccount, or ProjectSecret(project_id=))")
        return project_id

    def _token(self) -> str:
        if not self.token:
            raise ConfigurationError("this call needs the project token: token=...")
        return self.token

    def _request_factory(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> Callable[[], httpx.Request]:
        """The request of a call, built afresh for each attempt (credentials are checked before any is sent)."""
        auth: httpx.BasicAuth | None = None
        query: dict[str, str] = {}
        if call.auth is Auth.BEARER and not self.gdpr_token and self.credentials is None:
            raise ConfigurationError("this call needs the GDPR API's bearer token (gdpr_token=...) or credentials")
        if (
            call.auth is Auth.CREDENTIALS
            or (call.auth is Auth.TOKEN_OR_CREDENTIALS and not self.token)
            or (call.auth is Auth.BEARER and not self.gdpr_token)
        ):
            auth, query = self._auth()
        elif call.auth is Auth.TOKEN_OR_CREDENTIALS:
            auth = httpx.BasicAuth(self._token(), "")
        headers = dict(call.headers or {})
        if call.auth is Auth.BEARER and self.gdpr_token:
            headers["Authorization"] = f"Bearer {self.gdpr_token}"
        query.update(call.params)
        url = self._urls[call.family] + call.path
        data = dict(call.data) if call.data else None

        def build() -> httpx.Request:
            request = http.build_request(
                call.method, url, params=query, data=data, json=call.json, content=call.content, headers=headers
            )
            return next(auth.auth_flow(request)) if auth else request

        return build


def decode(response: httpx.Response) -> Any:
    """A reply's JSON; else `0`/`1` (the ingestion endpoints' plain answers) as ints; else the text."""
    try:
        return response.json()
    except ValueError:
        text = response.text.strip()
        return int(text) if text in ("0", "1") else text


def day(value: DateLike) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def params(**values: Any) -> dict[str, str]:
    """Query parameters: None dropped, lists and dicts JSON-encoded, booleans as true/false."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple | dict):
            out[key] = _json(value)
        elif isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = str(value)
    return out


# -- ingestion ------------------------------------------------------------------------------------


def send_batch(
    ctx: Settings, path: str, item: Batch | Oversized, query: Mapping[str, str], auth: Auth
) -> Flow[IngestResult]:
    """One request of an ingestion call; a batch the server refused in part comes back as failed records."""
    if isinstance(item, Oversized):
        message = f"record of {item.size} bytes exceeds the {MAX_BYTES} bytes a request may carry"
        return IngestResult(0, [FailedRecord(item.index, item.insert_id, None, message)], 0)
    body = item.body()
    headers = {"Content-Type": "application/json"}
    if ctx.gzip_level:
        body = gzip.compress(body, compresslevel=ctx.gzip_level)
        headers["Content-Encoding"] = "gzip"
    url = ctx._urls[Family.INGESTION] + path
    try:
        reply = yield Call("POST", Family.INGESTION, path, query, content=body, headers=headers, auth=auth)
    except BadRequest as exc:
        if isinstance(exc.body, dict) and "failed_records" in exc.body:
            return _partial(item, exc.body)
        raise
    if isinstance(reply, dict) and reply.get("status") == 0 and reply.get("error"):
        # /engage and /groups with verbose=1 answer 200 {"status": 0, "error": ...} for a refused batch
        raise BadRequest(200, reply, method="POST", url=url)
    if reply == 0:
        raise BadRequest(200, {"error": "request refused (0)"}, method="POST", url=url)
    accepted = item.size
    if isinstance(reply, dict) and isinstance(reply.get("num_records_imported"), int):
        accepted = reply["num_records_imported"]
    return IngestResult(accepted, [], 1)


def _partial(item: Batch, body: Mapping[str, Any]) -> IngestResult:
    failed: list[FailedRecord] = []
    for record in body.get("failed_records") or []:
        if isinstance(record, dict):
            index = record.get("index")
            global_index = item.start + index if isinstance(index, int) else None
            failed.append(
                FailedRecord(
                    global_index,
                    record.get("$insert_id") or record.get("insert_id"),
                    record.get("field"),
                    str(record.get("message", "")),
                )
            )
        else:  # a whole batch refused: plain strings
            failed.append(FailedRecord(None, None, None, str(record)))
    accepted = body.get("num_records_imported")
    if not isinstance(accepted, int):
        accepted = item.size - len(failed)
    if failed and all(f.index is None for f in failed) and accepted == 0:
        message = "; ".join(f.message for f in failed)
        failed = [FailedRecord(item.start + i, iid, None, message) for i, iid in enumerate(item.insert_ids)]
    return IngestResult(accepted, failed, 1)


def _ingest(
    ctx: Settings,
    path: str,
    records: Iterable[Mapping[str, Any]],
    query: Mapping[str, str],
    auth: Auth,
    max_records: int = MAX_RECORDS,
    max_bytes: int = MAX_BYTES,
) -> Flow[IngestResult]:
    total = IngestResult()
    for item in batches(records, max_records=max_records, max_bytes=max_bytes):
        result = yield from send_batch(ctx, path, item, query, auth)
        total.accepted += result.accepted
        total.failed.extend(result.failed)
        total.requests += result.requests
    return total


def _import_query(ctx: Settings, strict: bool) -> dict[str, str]:
    ctx._auth()  # no credentials: fail before reading the events
    return {"strict": "1" if strict else "0"}


def import_events(
    ctx: Settings,
    events: Iterable[Mapping[str, Any]],
    *,
    strict: bool = True,
    max_records: int = MAX_RECORDS,
    max_bytes: int = MAX_BYTES,
) -> Flow[IngestResult]:
    """Send events to `/import` (any time in the past) in batches, gzip-compressed, each event given an
    `$insert_id` when it has none. Refused records are in the result; valid ones of the same batch land."""
    query = _import_query(ctx, strict)
    prepared = (with_insert_id(e) for e in events)
    return (yield from _ingest(ctx, "/import", prepared, query, Auth.CREDENTIALS, max_records, max_bytes))


def import_batches(
    ctx: Settings,
    events: Iterable[Mapping[str, Any]],
    *,
    strict: bool = True,
    max_records: int = MAX_RECORDS,
    max_bytes: int = MAX_BYTES,
) -> Stream[IngestResult]:
    """As `import_events`, one result per request as it completes (`accepted + len(failed)` records
    each): for progress bars and resumable imports."""
    query = _import_query(ctx, strict)
    prepared = (with_insert_id(e) for e in events)
    for item in batches(prepared, max_records=max_records, max_bytes=max_bytes):
        result = yield from send_batch(ctx, "/import", item, query, Auth.CREDENTIALS)
        yield Emit([result])


def track(ctx: Settings, events: Iterable[Mapping[str, Any]]) -> Flow[IngestResult]:
    """Send recent events (Mixpanel: the last 5 days) to `/track` with the project token."""
    token = ctx._token()

    def prepared() -> Iterator[dict[str, Any]]:
        for event in events:
            out = with_insert_id(event)
            out["properties"].setdefault("token", token)
            yield out

    return (yield from _ingest(ctx, "/track", prepared(), {"strict": "1"}, Auth.NONE))


def engage(ctx: Settings, updates: Iterable[Mapping[str, Any]]) -> Flow[IngestResult]:
    """Send user profile updates (`$set`, `$set_once`, `$add`, `$append`, `$union`, `$remove`, `$unset`,
    `$delete`) to `/engage`; `$token` is filled in."""
    return (yield from _profile_updates(ctx, "/engage", updates))


def groups(ctx: Settings, updates: Iterable[Mapping[str, Any]]) -> Flow[IngestResult]:
    """Send group profile updates (`$group_key`, `$group_id`, an operation) to `/groups`."""
    return (yield from _profile_updates(ctx, "/groups", updates))


def _profile_updates(ctx: Settings, path: str, updates: Iterable[Mapping[str, Any]]) -> Flow[IngestResult]:
    token = ctx._token()
    prepared = ({"$token": token, **u} for u in updates)
    return (yield from _ingest(ctx, path, prepared, {"verbose": "1"}, Auth.NONE))


# -- identity -------------------------------------------------------------------------------------


def identify(ctx: Settings, identified_id: str, anon_id: str, *, timestamp: float | None = None) -> Flow[IngestResult]:
    """Original ID Merge: link an anonymous id to the identified one (an `$identify` event on `/track`)."""
    props = {"distinct_id": identified_id, "$identified_id": identified_id, "$anon_id": anon_id}
    return (yield from track(ctx, [{"event": "$identify", "properties": {**props, "time": timestamp or time.time()}}]))


def alias(ctx: Settings, alias: str, distinct_id: str, *, timestamp: float | None = None) -> Flow[IngestResult]:
    """Original ID Merge: make `alias` another id of `distinct_id` (a `$create_alias` event on `/track`)."""
    props = {"distinct_id": distinct_id, "alias": alias, "time": timestamp or time.time()}
    return (yield from track(ctx, [{"event": "$create_alias", "properties": props}]))


def merge(
    ctx: Settings, distinct_id_1: str, distinct_id_2: str, *, timestamp: float | None = None
) -> Flow[IngestResult]:
    """Original ID Merge: merge two ids into one user (a `$merge` event on `/import`, authenticated)."""
    props = {
        "$distinct_ids": [distinct_id_1, distinct_id_2],
        "distinct_id": distinct_id_1,
        "time": timestamp or time.time(),
    }
    return (yield from import_events(ctx, [{"event": "$merge", "properties": props}]))


# -- raw export -----------------------------------------------------------------------------------


def export_plan(
    from_date: DateLike,
    to_date: DateLike,
    *,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    time_in_ms: bool = False,
    limit: int | None = None,
) -> Iterator[tuple[date, dict[str, str]]]:
    """The export's requests: one per day, oldest first (one over the whole range with `limit`)."""
    start, end = day(from_date), day(to_date)
    if start > end:
        raise ConfigurationError("from_date is after to_date")
    events = [event] if isinstance(event, str) else list(event) if event else None
    common = params(event=events, where=where, time_in_ms=True if time_in_ms else None, limit=limit)
    if limit is not None:
        yield start, {**common, "from_date": start.isoformat(), "to_date": end.isoformat()}
        return
    current = start
    while current <= end:
        yield current, {**common, "from_date": current.isoformat(), "to_date": current.isoformat()}
        current += timedelta(days=1)


def raw(line: bytes) -> bytes:
    """A streamed line as it is (the client hands these on without a call per line)."""
    return line


def export_lines(ctx: Settings, query: dict[str, str]) -> Stream[bytes]:
    """The lines of one export request (bytes, without the newline), streamed by the client and resumed if
    the stream is cut."""
    ctx._auth()
    yield Call("GET", Family.EXPORT, "/api/2.0/export", query, headers={"Accept-Encoding": "gzip"}, stream=raw)


def export(
    ctx: Settings,
    from_date: DateLike,
    to_date: DateLike,
    *,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    time_in_ms: bool = False,
    limit: int | None = None,
) -> Stream[dict[str, Any]]:
    """Every raw event of the range (days inclusive), streamed, one request per day."""
    ctx._auth()
    plan = export_plan(from_date, to_date, event=event, where=where, time_in_ms=time_in_ms, limit=limit)
    for _, query in plan:
        yield Call("GET", Family.EXPORT, "/api/2.0/export", query, headers={"Accept-Encoding": "gzip"}, stream=loads)


# -- Query API ------------------------------------------------------------------------------------


def query(ctx: Settings, endpoint: str, /, **values: Any) -> Flow[Any]:
    """Any Query API endpoint by name (`"events/top"`, `"segmentation/numeric"`, ...): GET
    `/api/query/<endpoint>` with the parameters (lists and dicts JSON-encoded)."""
    return (yield Call("GET", Family.QUERY, f"/api/query/{endpoint.strip('/')}", params(**values)))


def segmentation(
    ctx: Settings,
    event: str,
    from_date: DateLike,
    to_date: DateLike,
    *,
    on: str | None = None,
    where: str | None = None,
    unit: str | None = None,
    interval: int | None = None,
    type: str | None = None,
    limit: int | None = None,
) -> Flow[dict[str, Any]]:
    """Event counts over time, optionally split by `on`: `{"data": {"series", "values"}, "legend_size"}`."""
    result: dict[str, Any] = yield from query(
        ctx,
        "segmentation",
        event=event,
        from_date=day(from_date),
        to_date=day(to_date),
        on=on,
        where=where,
        unit=unit,
        interval=interval,
        type=type,
        limit=limit,
    )
    return result


def funnel(
    ctx: Settings,
    funnel_id: int,
    from_date: DateLike,
    to_date: DateLike,
    *,
    length: int | None = None,
    length_unit: str | None = None,
    interval: int | None = None,
    unit: str | None = None,
    on: str | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> Flow[dict[str, Any]]:
    """A saved funnel's conversion per date bucket: `{"meta": {"dates"}, "data": {date: ...}}`."""
    result: dict[str, Any] = yield from query(
        ctx,
        "funnels",
        funnel_id=funnel_id,
        from_date=day(from_date),
        to_date=day(to_date),
        length=length,
        length_unit=length_unit,
        interval=interval,
        unit=unit,
        on=on,
        where=where,
        limit=limit,
    )
    return result


def funnels_list(ctx: Settings) -> Flow[list[dict[str, Any]]]:
    """The saved funnels: `[{"funnel_id", "name"}]`."""
    result: list[dict[str, Any]] = yield from query(ctx, "funnels/list")
    return result


def retention(
    ctx: Settings,
    from_date: DateLike,
    to_date: DateLike,
    *,
    born_event: str | None = None,
    event: str | None = None,
    born_where: str | None = None,
    where: str | None = None,
    retention_type: str | None = None,
    unit: str | None = None,
    interval: int | None = None,
    interval_count: int | None = None,
    unbounded_retention: bool | None = None,
    on: str | None = None,
    limit: int | None = None,
) -> Flow[dict[str, Any]]:
    """Cohorts by birth date and how many came back in each interval: `{date: {"counts", "first"}}`."""
    result: dict[str, Any] = yield from query(
        ctx,
        "retention",
        from_date=day(from_date),
        to_date=day(to_date),
        born_event=born_event,
        event=event,
        born_where=born_where,
        where=where,
        retention_type=retention_type,
        unit=unit,
        interval=interval,
        interval_count=interval_count,
        unbounded_retention=unbounded_retention,
        on=on,
        limit=limit,
    )
    return result


def insights(ctx: Settings, bookmark_id: int) -> Flow[dict[str, Any]]:
    """A saved Insights report: `{"computed_at", "date_range", "headers", "series"}`."""
    result: dict[str, Any] = yield from query(ctx, "insights", bookmark_id=bookmark_id)
    return result


def cohorts_list(ctx: Settings) -> Flow[list[dict[str, Any]]]:
    """The saved cohorts with their current counts."""
    result: list[dict[str, Any]] = yield from query(ctx, "cohorts/list")
    return result


def activity_stream(
    ctx: Settings, distinct_ids: Sequence[str], from_date: DateLike, to_date: DateLike
) -> Flow[list[dict[str, Any]]]:
    """The events of these users (identity-resolved), oldest first."""
    reply = yield from query(
        ctx, "stream/query", distinct_ids=list(distinct_ids), from_date=day(from_date), to_date=day(to_date)
    )
    events: list[dict[str, Any]] = reply["results"]["events"]
    return events


def profiles(
    ctx: Settings,
    *,
    where: str | None = None,
    distinct_ids: Sequence[str] | None = None,
    output_properties: Sequence[str] | None = None,
    cohort_id: int | None = None,
    include_all_users: bool | None = None,
    group_key: str | None = None,
    page_size: int | None = None,
) -> Stream[dict[str, Any]]:
    """User (or, with `group_key`, group) profiles matching the filters, fetched page by page as the
    iterator is consumed: `{"$distinct_id", "$properties"}` each."""
    form = params(
        where=where,
        distinct_ids=list(distinct_ids) if distinct_ids is not None else None,
        output_properties=list(output_properties) if output_properties is not None else None,
        filter_by_cohort={"id": cohort_id} if cohort_id is not None else None,
        include_all_users=include_all_users,
        data_group_id=group_key,
        page_size=page_size,
    )
    page = 0
    session_id: str | None = None
    while True:
        body = dict(form)
        if session_id is not None:
            body.update(session_id=session_id, page=str(page))
        reply = yield Call("POST", Family.QUERY, "/api/query/engage", data=body)
        results: list[dict[str, Any]] = reply.get("results") or []
        yield Emit(results)
        size = reply.get("page_size") or len(results)
        session_id = reply.get("session_id")
        if not results or len(results) < size or not session_id:
            return
        page += 1


# -- feature flags: evaluation --------------------------------------------------------------------


def flags(ctx: Settings, context: Mapping[str, Any], flag_key: str | None = None) -> Flow[dict[str, dict[str, Any]]]:
    """Remote evaluation (`GET /flags`): `{flag key: {"variant_key", "variant_value", "experiment_id",
    "is_experiment_active", "is_qa_tester"}}` for the flags `context` gets (`distinct_id` required;
    `device_id`, `custom_properties`, any key a flag hashes), only `flag_key` when given.

    Sent to the ingestion host as the SDKs send it: Basic with the project token when the client has one
    (what PyPI mixpanel and mixpanel-browser send), else the credentials."""
    query = params(context=dict(context), flag_key=flag_key)
    reply = yield Call("GET", Family.INGESTION, "/flags", query, auth=Auth.TOKEN_OR_CREDENTIALS)
    result: dict[str, dict[str, Any]] = reply.get("flags") or {} if isinstance(reply, dict) else {}
    return result


def flag_definitions(ctx: Settings) -> Flow[list[dict[str, Any]]]:
    """The project's enabled flags as `GET /flags/definitions` lists them (the `flags` array)."""
    reply = yield Call("GET", Family.INGESTION, "/flags/definitions", auth=Auth.TOKEN_OR_CREDENTIALS)
    definitions: list[dict[str, Any]] = reply.get("flags") or [] if isinstance(reply, dict) else reply
    return definitions


# -- the App API ----------------------------------------------------------------------------------


def _app(
    ctx: Settings,
    method: str,
    path: str,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    *,
    once: bool = False,
) -> Flow[Any]:
    """An App API call under `/api/app/projects/{project_id}`: the reply's `results`. `once` for a create."""
    full = f"/api/app/projects/{ctx._project_id()}{path}"
    reply = yield Call(method, Family.APP, full, query or {}, json=body, once=once)
    return reply.get("results") if isinstance(reply, dict) else reply


def saved_list(ctx: Settings, collection: str) -> Flow[list[dict[str, Any]]]:
    """Every object of the collection."""
    result: list[dict[str, Any]] = yield from _app(ctx, "GET", f"/{collection}")
    return result


def saved_get(ctx: Settings, collection: str, object_id: int) -> Flow[dict[str, Any]]:
    """One object."""
    result: dict[str, Any] = yield from _app(ctx, "GET", f"/{collection}/{object_id}")
    return result


def saved_create(ctx: Settings, collection: str, definition: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    """Save a new object: the object as stored, with its id."""
    result: dict[str, Any] = yield from _app(ctx, "POST", f"/{collection}", dict(definition), once=True)
    return result


def saved_update(ctx: Settings, collection: str, object_id: int, changes: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    """Change the given fields of an object (PATCH): the object as stored."""
    result: dict[str, Any] = yield from _app(ctx, "PATCH", f"/{collection}/{object_id}", dict(changes))
    return result


def saved_delete(ctx: Settings, collection: str, object_id: int) -> Flow[None]:
    """Delete an object."""
    yield from _app(ctx, "DELETE", f"/{collection}/{object_id}")


# -- annotations: the App API ---------------------------------------------------------------------


def _moment(value: str | date) -> str:
    """A date or date-time as the annotation routes read it (a `datetime` as `YYYY-MM-DD HH:MM:SS`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    return value.isoformat()


def annotations_list(
    ctx: Settings,
    *,
    from_date: DateLike | None = None,
    to_date: DateLike | None = None,
    tags: Sequence[int] | None = None,
) -> Flow[list[Annotation]]:
    """The annotations, oldest first; `from_date`/`to_date` are whole days (inclusive, either side may be
    open), `tags` keeps the annotations carrying any of these tag ids."""
    query = params(
        fromDate=day(from_date) if from_date is not None else None,
        toDate=day(to_date) if to_date is not None else None,
        tags=",".join(str(t) for t in tags) if tags is not None else None,
    )
    result: list[Annotation] = yield from _app(ctx, "GET", "/annotations", query=query)
    return result


def annotations_get(ctx: Settings, annotation_id: int) -> Flow[Annotation]:
    """One annotation."""
    result: Annotation = yield from _app(ctx, "GET", f"/annotations/{annotation_id}")
    return result


def annotations_create(
    ctx: Settings, date: str | date, description: str, *, tags: Sequence[int] = ()
) -> Flow[Annotation]:
    """A new annotation at `date` (`YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD`, a `date` or a naive `datetime`),
    with these tag ids."""
    body: dict[str, Any] = {"date": _moment(date), "description": description}
    if tags:
        body["tags"] = list(tags)
    result: Annotation = yield from _app(ctx, "POST", "/annotations", body, once=True)
    return result


def annotations_update(
    ctx: Settings,
    annotation_id: int,
    *,
    date: str | date | None = None,
    description: str | None = None,
    tags: Sequence[int] | None = None,
) -> Flow[Annotation]:
    """Change the given fields (`tags` replaces the tag list; `[]` removes every tag); the rest is kept."""
    body: dict[str, Any] = {}
    if date is not None:
        body["date"] = _moment(date)
    if description is not None:
        body["description"] = description
    if tags is not None:
        body["tags"] = list(tags)
    result: Annotation = yield from _app(ctx, "PATCH", f"/annotations/{annotation_id}", body)
    return result


def annotations_delete(ctx: Settings, annotation_id: int) -> Flow[None]:
    """Delete an annotation (its tags stay)."""
    yield from _app(ctx, "DELETE", f"/annotations/{annotation_id}")


def annotation_tags(ctx: Settings) -> Flow[list[AnnotationTag]]:
    """Every annotation tag of the project."""
    result: list[AnnotationTag] = yield from _app(ctx, "GET", "/annotations/tags")
    return result


def annotations_create_tag(ctx: Settings, name: str) -> Flow[AnnotationTag]:
    """A new tag (names are unique in a project)."""
    result: AnnotationTag = yield from _app(ctx, "POST", "/annotations/tags", {"name": name}, once=True)
    return result


# -- annotations: the legacy Query API family -----------------------------------------------------


def _legacy(ctx: Settings, path: str, form: dict[str, str], *, once: bool = False) -> Flow[dict[str, Any]]:
    call = Call("POST", Family.QUERY, f"/api/2.0/annotations{path}", data=form or None, once=once)
    reply: dict[str, Any] = yield call
    return reply


def legacy_annotations_list(
    ctx: Settings, *, from_date: DateLike | None = None, to_date: DateLike | None = None
) -> Flow[list[LegacyAnnotation]]:
    """`/api/2.0/annotations`: the annotations of the days (inclusive), oldest first."""
    query = params(
        from_date=day(from_date) if from_date is not None else None,
        to_date=day(to_date) if to_date is not None else None,
    )
    reply = yield Call("GET", Family.QUERY, "/api/2.0/annotations", query)
    result: list[LegacyAnnotation] = reply["annotations"]
    return result


def legacy_annotations_create(ctx: Settings, date: str | date, description: str) -> Flow[LegacyAnnotation]:
    """`/api/2.0/annotations/create`."""
    reply = yield from _legacy(ctx, "/create", {"date": _moment(date), "description": description}, once=True)
    result: LegacyAnnotation = reply["annotation"]
    return result


def legacy_annotations_update(
    ctx: Settings, annotation_id: int, *, date: str | date | None = None, description: str | None = None
) -> Flow[LegacyAnnotation]:
    """`/api/2.0/annotations/update`: change the date and/or the description."""
    form = params(id=annotation_id, date=_moment(date) if date is not None else None, description=description)
    reply = yield from _legacy(ctx, "/update", form)
    result: LegacyAnnotation = reply["annotation"]
    return result


def legacy_annotations_delete(ctx: Settings, annotation_id: int) -> Flow[None]:
    """`/api/2.0/annotations/delete`."""
    yield from _legacy(ctx, "/delete", {"id": str(annotation_id)})


# -- feature flags: management (the App API) ------------------------------------------------------


def _flags_path(ctx: Settings, rest: str = "") -> str:
    workspace = f"/workspaces/{ctx.workspace_id}" if ctx.workspace_id is not None else ""
    return f"{workspace}/feature-flags{rest}"


def feature_flags_list(ctx: Settings, *, include_archived: bool = False) -> Flow[list[FeatureFlag]]:
    """The project's flags in creation order (archived ones only with `include_archived`)."""
    query = params(include_archived=True if include_archived else None)
    result: list[FeatureFlag] = yield from _app(ctx, "GET", _flags_path(ctx), query=query)
    return result


def feature_flags_get(ctx: Settings, flag_id: str) -> Flow[FeatureFlag]:
    """One flag by its id."""
    result: FeatureFlag = yield from _app(ctx, "GET", _flags_path(ctx, f"/{flag_id}"))
    return result


def feature_flags_create(ctx: Settings, definition: Mapping[str, Any]) -> Flow[FeatureFlag]:
    """A new flag: `name`, `key` and `ruleset` required; `status` (default disabled), `context`,
    `description`, `tags`, `serving_method`, `experiment_id`, `hash_salt`, ... optional."""
    result: FeatureFlag = yield from _app(ctx, "POST", _flags_path(ctx), dict(definition), once=True)
    return result


def feature_flags_replace(ctx: Settings, flag_id: str, definition: Mapping[str, Any]) -> Flow[FeatureFlag]:
    """Replace a flag (PUT): `name`, `key` and `ruleset` required."""
    result: FeatureFlag = yield from _app(ctx, "PUT", _flags_path(ctx, f"/{flag_id}"), dict(definition))
    return result


def feature_flags_update(ctx: Settings, flag_id: str, changes: Mapping[str, Any]) -> Flow[FeatureFlag]:
    """Change the given fields only (PATCH)."""
    result: FeatureFlag = yield from _app(ctx, "PATCH", _flags_path(ctx, f"/{flag_id}"), dict(changes))
    return result


def feature_flags_enable(ctx: Settings, flag_id: str) -> Flow[FeatureFlag]:
    """Serve the flag (`{"status": "enabled"}`)."""
    return (yield from feature_flags_update(ctx, flag_id, {"status": "enabled"}))


def feature_flags_disable(ctx: Settings, flag_id: str) -> Flow[FeatureFlag]:
    """Stop serving the flag (`{"status": "disabled"}`)."""
    return (yield from feature_flags_update(ctx, flag_id, {"status": "disabled"}))


def feature_flags_delete(ctx: Settings, flag_id: str) -> Flow[None]:
    """Delete a flag."""
    yield from _app(ctx, "DELETE", _flags_path(ctx, f"/{flag_id}"))


def feature_flags_archive(ctx: Settings, flag_id: str) -> Flow[FeatureFlag]:
    """Archive a flag (no longer served, left out of listings)."""
    result: FeatureFlag = yield from _app(ctx, "POST", _flags_path(ctx, f"/{flag_id}/archive"))
    return result


def feature_flags_restore(ctx: Settings, flag_id: str) -> Flow[FeatureFlag]:
    """Restore an archived flag, disabled."""
    result: FeatureFlag = yield from _app(ctx, "DELETE", _flags_path(ctx, f"/{flag_id}/archive"))
    return result


def feature_flags_set_test_users(ctx: Settings, flag_id: str, users: Mapping[str, str]) -> Flow[FeatureFlag]:
    """QA testers: `{variant key: distinct id}`; each id gets that variant whatever the rollout."""
    result: FeatureFlag = yield from _app(
        ctx, "PUT", _flags_path(ctx, f"/{flag_id}/test-users"), {"users": dict(users)}
    )
    return result


def feature_flags_readout(
    ctx: Settings,
    flag_id: str,
    conversion_event: str,
    from_date: DateLike,
    to_date: DateLike,
    *,
    confidence: float | None = None,
) -> Flow[dict[str, Any]]:
    """mixhouse's experiment readout of a flag: conversion per variant against the control."""
    query = params(
        conversion_event=conversion_event, from_date=day(from_date), to_date=day(to_date), confidence=confidence
    )
    result: dict[str, Any] = yield from _app(ctx, "GET", _flags_path(ctx, f"/{flag_id}/readout"), query=query)
    return result


# -- GDPR / CCPA (API v3, the GDPR bearer token) --------------------------------------------------


def _gdpr(ctx: Settings, method: str, path: str, body: Any = None, *, once: bool = False) -> Flow[Any]:
    """A GDPR API call: the project named by its token (`token=`, as Mixpanel documents) when the client has
    it; with the bearer token (else the credentials, which mixhouse accepts from admins and owners)."""
    query = {"token": ctx.token} if ctx.token else {}
    reply = yield Call(method, Family.APP, f"/api/app/{path}", query, json=body, auth=Auth.BEARER, once=once)
    return reply.get("results") if isinstance(reply, dict) else reply


def gdpr_create_retrieval(
    ctx: Settings, distinct_ids: Sequence[str], *, compliance_type: str = "GDPR", disclosure_type: str | None = None
) -> Flow[str]:
    """Start a data retrieval job for these users (at most 2,000): its task id."""
    body: dict[str, Any] = {"distinct_ids": list(distinct_ids), "compliance_type": compliance_type}
    if disclosure_type is not None:
        body["disclosure_type"] = disclosure_type
    results = yield from _gdpr(ctx, "POST", "data-retrievals/v3.0", body, once=True)
    return str(results["task_id"])


def gdpr_retrieval(ctx: Settings, tracking_id: str) -> Flow[dict[str, Any]]:
    """A retrieval job: `{"status", "results" (the download URL once done), "distinct_ids"}`."""
    result: dict[str, Any] = yield from _gdpr(ctx, "GET", f"data-retrievals/v3.0/{quote(tracking_id, safe='')}")
    return result


def gdpr_cancel_retrieval(ctx: Settings, tracking_id: str) -> Flow[None]:
    """Cancel a retrieval job that has not started."""
    yield from _gdpr(ctx, "DELETE", f"data-retrievals/v3.0/{quote(tracking_id, safe='')}")


def gdpr_retrieval_file(ctx: Settings, tracking_id: str) -> Flow[Any]:
    """A finished retrieval's file (mixhouse: JSON with the users' identities, profiles and events)."""
    query = {"token": ctx.token} if ctx.token else {}
    path = f"/api/app/data-retrievals/v3.0/{quote(tracking_id, safe='')}/file"
    return (yield Call("GET", Family.APP, path, query, auth=Auth.BEARER))


def gdpr_create_deletion(ctx: Settings, distinct_ids: Sequence[str], *, compliance_type: str = "GDPR") -> Flow[str]:
    """Start a deletion job for these users (at most 2,000): its task id."""
    body = {"distinct_ids": list(distinct_ids), "compliance_type": compliance_type}
    results = yield from _gdpr(ctx, "POST", "data-deletions/v3.0", body, once=True)
    return str(results["task_id"])


def gdpr_deletion(ctx: Settings, tracking_id: str) -> Flow[dict[str, Any]]:
    """A deletion job: `{"tracking_id", "status", "requesting_user", "compliance_type", "project_id",
    "date_requested", "distinct_ids"}`."""
    result: dict[str, Any] = yield from _gdpr(ctx, "GET", f"data-deletions/v3.0/{quote(tracking_id, safe='')}")
    return result


def gdpr_cancel_deletion(ctx: Settings, tracking_id: str) -> Flow[None]:
    """Cancel a deletion job that has not started (a 405 `BadRequest`... once it has)."""
    yield from _gdpr(ctx, "DELETE", f"data-deletions/v3.0/{quote(tracking_id, safe='')}")


# -- lookup tables --------------------------------------------------------------------------------


def lookup_tables_list(ctx: Settings) -> Flow[list[dict[str, Any]]]:
    """The project's lookup tables: `[{"id", "name"}]`."""
    reply = yield Call("GET", Family.INGESTION, "/lookup-tables")
    result: list[dict[str, Any]] = reply.get("results") or [] if isinstance(reply, dict) else reply
    return result


def lookup_tables_replace(
    ctx: Settings, table_id: str, rows: str | bytes | Iterable[Sequence[Any]]
) -> Flow[dict[str, Any]]:
    """Replace a lookup table's rows, all at once: CSV text or bytes (a header row first, the row id in the
    first column), or rows to write as CSV (the first one the header). Sent gzip-compressed."""
    if isinstance(rows, str):
        data = rows.encode()
    elif isinstance(rows, bytes):
        data = rows
    else:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        data = out.getvalue().encode()
    headers = {"Content-Type": "text/csv"}
    if ctx.gzip_level:
        data = gzip.compress(data, compresslevel=ctx.gzip_level)
        headers["Content-Encoding"] = "gzip"
    path = f"/lookup-tables/{quote(table_id, safe='')}"
    result: dict[str, Any] = yield Call("PUT", Family.INGESTION, path, content=data, headers=headers)
    return result


def lookup_tables_create(ctx: Settings, name: str) -> Flow[dict[str, Any]]:
    """mixhouse's App API: a new, empty table (Mixpanel creates tables in its web app only):
    `{"id", "name", "columns", "row_count", "created", "updated"}`."""
    result: dict[str, Any] = yield from _app(ctx, "POST", "/lookup-tables", {"name": name}, once=True)
    return result


def lookup_tables_get(ctx: Settings, table_id: str, *, page: int = 0) -> Flow[dict[str, Any]]:
    """mixhouse's App API: a table and one page of its rows (values typed)."""
    path = f"/lookup-tables/{quote(table_id, safe='')}"
    result: dict[str, Any] = yield from _app(ctx, "GET", path, query={"page": str(page)})
    return result


def lookup_tables_delete(ctx: Settings, table_id: str) -> Flow[None]:
    """mixhouse's App API: delete a table."""
    yield from _app(ctx, "DELETE", f"/lookup-tables/{quote(table_id, safe='')}")


# -- data pipelines (Mixpanel's /api/2.0/nessie/pipeline, on the export host) ---------------------------

_PIPELINE = "/api/2.0/nessie/pipeline/"


def _pipeline_form(**values: Any) -> dict[str, str]:
    form: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            form[key] = "true" if value else "false"
        elif isinstance(value, date):
            form[key] = value.isoformat()
        elif isinstance(value, list | tuple):
            form[key] = _json(list(value))
        else:
            form[key] = str(value)
    return form


def pipelines_create(
    ctx: Settings,
    /,
    type: str,
    *,
    from_date: DateLike | None = None,
    to_date: DateLike | None = None,
    events: Sequence[str] | None = None,
    where: str | None = None,
    trial: bool | None = None,
    **options: Any,
) -> Flow[list[str]]:
    """Create a pipeline (`type` s3-raw, gcs-raw, azure-raw, aws, gcs-schema, azure-blob); `options` are the
    other form fields (`s3_bucket`, `s3_prefix`, `s3_region`, `s3_endpoint_url`, `frequency`, `schema_type`,
    `sync`, ...). The names of the pipelines created."""
    form = _pipeline_form(
        type=type,
        from_date=day(from_date) if from_date is not None else None,
        to_date=day(to_date) if to_date is not None else None,
        events=events,
        where=where,
        trial=trial,
        **options,
    )
    reply = yield Call("POST", Family.EXPORT, _PIPELINE + "create", data=form, once=True)
    return list(reply.get("pipeline_names") or [])


def pipelines_edit(
    ctx: Settings, name: str, *, events: Sequence[str] | None = None, where: str | None = None
) -> Flow[None]:
    """Change a pipeline's `events` and/or `where`."""
    yield Call("POST", Family.EXPORT, _PIPELINE + "edit", data=_pipeline_form(name=name, events=events, where=where))


def pipelines_pause(ctx: Settings, name: str) -> Flow[None]:
    yield Call("POST", Family.EXPORT, _PIPELINE + "pause", data={"name": name})


def pipelines_resume(ctx: Settings, name: str) -> Flow[None]:
    yield Call("POST", Family.EXPORT, _PIPELINE + "resume", data={"name": name})


def pipelines_cancel(ctx: Settings, name: str) -> Flow[None]:
    """Delete a pipeline and its history (no undo)."""
    yield Call("POST", Family.EXPORT, _PIPELINE + "cancel", data={"name": name})


def pipelines_list(ctx: Settings) -> Flow[list[dict[str, Any]]]:
    """The project's pipelines (`jobs`): `[{"name", "Dispatcher", "last_dispatched", "frequency", ...}]`."""
    reply = yield Call("GET", Family.EXPORT, _PIPELINE + "jobs")
    found: list[dict[str, Any]] = []
    for items in (reply or {}).values():  # keyed by the project id
        found += items
    return found


def pipelines_status(
    ctx: Settings, name: str, *, status: str | None = None, summary: bool = False
) -> Flow[dict[str, Any]]:
    """A pipeline's export tasks grouped by state (counts only with `summary=True`)."""
    query = {"name": name, **({"status": status} if status else {}), **({"summary": "true"} if summary else {})}
    result: dict[str, Any] = yield Call("GET", Family.EXPORT, _PIPELINE + "status", query)
    return result


def pipelines_timeline(ctx: Settings, name: str) -> Flow[list[dict[str, Any]]]:
    """One entry per day: `{"date", "sync_times", "status"}`."""
    reply = yield Call("GET", Family.EXPORT, _PIPELINE + "timeline", {"name": name})
    return list(reply.get("day_syncs") or [])


# -- JQL ------------------------------------------------------------------------------------------


def jql(ctx: Settings, script: str, params: Mapping[str, Any] | None = None) -> Flow[Any]:
    """Run a JQL script (`POST /api/query/jql`, form `script` and `params` as JSON): the script's result,
    usually a list."""
    form = {"script": script}
    if params is not None:
        form["params"] = _json(dict(params))
    return (yield Call("POST", Family.QUERY, "/api/query/jql", data=form))


# -- Lexicon schemas (the App API) ----------------------------------------------------------------


def _schemas_path(entity_type: str | None = None, name: str | None = None) -> str:
    path = "/schemas"
    if entity_type is not None:
        path += f"/{quote(entity_type, safe='')}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
    elif name is not None:
        raise ConfigurationError("a schema's name needs its entity_type")
    return path


def schemas_list(ctx: Settings, entity_type: str | None = None) -> Flow[list[dict[str, Any]]]:
    """The data dictionary: `[{"entityType", "name", "schemaJson"}]`, of one entity type (`event`,
    `profile`) when given."""
    result: list[dict[str, Any]] = yield from _app(ctx, "GET", _schemas_path(entity_type))
    return result


def schemas_get(ctx: Settings, entity_type: str, name: str) -> Flow[dict[str, Any]]:
    """One schema (`{"description", "properties", "metadata"}`)."""
    result: dict[str, Any] = yield from _app(ctx, "GET", _schemas_path(entity_type, name))
    return result


def schemas_upsert(
    ctx: Settings, entries: Iterable[Mapping[str, Any]], *, truncate: bool = False
) -> Flow[dict[str, Any]]:
    """Create or replace schemas (`{"entityType", "name", "schemaJson"}` each); `truncate` first deletes the
    whole dictionary. `{"added", "deleted"}`."""
    body = {"entries": [dict(e) for e in entries], "truncate": truncate}
    result: dict[str, Any] = yield from _app(ctx, "POST", "/schemas", body)
    return result


def schemas_put(ctx: Settings, entity_type: str, name: str, schema: Mapping[str, Any]) -> Flow[None]:
    """Create or replace one schema."""
    yield from _app(ctx, "POST", _schemas_path(entity_type, name), dict(schema))


def schemas_delete(ctx: Settings, entity_type: str | None = None, name: str | None = None) -> Flow[dict[str, Any]]:
    """Delete one schema, every schema of an entity type, or (neither given) the whole dictionary:
    `{"delete_count"}`."""
    result: dict[str, Any] = yield from _app(ctx, "DELETE", _schemas_path(entity_type, name))
    return result


# -- service accounts (the organisation's) --------------------------------------------------------


def _org(
    ctx: Settings, method: str, organization_id: int, path: str = "", body: Any = None, *, once: bool = False
) -> Flow[Any]:
    full = f"/api/app/organizations/{organization_id}/service-accounts{path}"
    reply = yield Call(method, Family.APP, full, json=body, once=once)
    return reply.get("results") if isinstance(reply, dict) else reply


def service_accounts_list(ctx: Settings, organization_id: int) -> Flow[list[dict[str, Any]]]:
    """The organisation's service accounts (never their secrets)."""
    result: list[dict[str, Any]] = yield from _org(ctx, "GET", organization_id)
    return result


def service_accounts_create(
    ctx: Settings,
    organization_id: int,
    username: str,
    *,
    role: str | None = None,
    expires: str | None = None,
    projects: Sequence[Mapping[str, Any]] | None = None,
) -> Flow[dict[str, Any]]:
    """A new service account: the account with its secret (`token`), shown this once. `projects` is
    `[{"id", "role"}]`; `expires` an ISO 8601 date-time."""
    body: dict[str, Any] = {"username": username}
    if role is not None:
        body["role"] = role
    if expires is not None:
        body["expires"] = expires
    if projects is not None:
        body["projects"] = [dict(p) for p in projects]
    result: dict[str, Any] = yield from _org(ctx, "POST", organization_id, "", body, once=True)
    return result


def service_accounts_get(ctx: Settings, organization_id: int, account_id: int) -> Flow[dict[str, Any]]:
    """One service account."""
    result: dict[str, Any] = yield from _org(ctx, "GET", organization_id, f"/{account_id}")
    return result


def service_accounts_delete(ctx: Settings, organization_id: int, account_id: int) -> Flow[None]:
    """Delete a service account."""
    yield from _org(ctx, "DELETE", organization_id, f"/{account_id}")


def service_accounts_add_to_project(
    ctx: Settings, organization_id: int, account_ids: Sequence[int], projects: Sequence[Mapping[str, Any]]
) -> Flow[None]:
    """Give these accounts a role on these projects (`[{"id", "role"}]`)."""
    body = {"service_account_ids": list(account_ids), "projects": [dict(p) for p in projects]}
    yield from _org(ctx, "POST", organization_id, "/add-to-project", body)


def service_accounts_remove_from_project(
    ctx: Settings, organization_id: int, account_ids: Sequence[int], project_ids: Sequence[int]
) -> Flow[None]:
    """Take these accounts off these projects."""
    body = {"projects": [{"id": p, "service_account_ids": list(account_ids)} for p in project_ids]}
    yield from _org(ctx, "POST", organization_id, "/remove-from-project", body)


def service_accounts_of_project(ctx: Settings) -> Flow[list[dict[str, Any]]]:
    """The service accounts of the client's project, each with its role there."""
    result: list[dict[str, Any]] = yield from _app(ctx, "GET", "/service-accounts")
    return result
