"""The client: one object per project, one method per API call, retries and batching inside."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import TracebackType
from typing import Any

import httpx

from mixhouse_client._batching import MAX_BYTES, MAX_RECORDS, Batch, Oversized, batches, loads, with_insert_id
from mixhouse_client._config import Credentials, Family, ProjectSecret, Region, ServiceAccount, base_urls
from mixhouse_client._exceptions import BadRequest, ConfigurationError, TransportError
from mixhouse_client._flags import LocalFlags
from mixhouse_client._retry import RETRYABLE_EXCEPTIONS, RetryPolicy
from mixhouse_client._transport import Sender

__version__ = "0.1.0"

DateLike = date | str


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


@dataclass(frozen=True)
class ExportChunk:
    """One day of a raw export. `lines()` streams its JSON lines (bytes, without the newline)."""

    day: date
    _client: Client
    _params: dict[str, str]

    def lines(self) -> Iterator[bytes]:
        return self._client._export_lines(self._params)

    def events(self) -> Iterator[dict[str, Any]]:
        for line in self.lines():
            yield loads(line)


def _day(value: DateLike) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _params(**values: Any) -> dict[str, str]:
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


class Client:
    """A client of Mixpanel's HTTP APIs, for Mixpanel itself or a mixhouse server.

    `base_url` sends every API family to one server (mixhouse); without it, `region` picks Mixpanel's hosts
    (us, eu or in). `credentials` is a `ServiceAccount` (recommended) or a `ProjectSecret`; `token` is the
    project token that `/track`, `/engage` and `/groups` need. `timeout` is seconds (or an `httpx.Timeout`),
    `retry` a `RetryPolicy`, `transport` any httpx transport (`AppTransport` for an in-process app).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        region: Region | str = Region.US,
        credentials: Credentials | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        gzip_level: int = 1,
    ) -> None:
        self._urls = base_urls(base_url, region)
        self.credentials = credentials
        self.token = token
        self.gzip_level = gzip_level
        http_timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout, connect=10.0)
        self._http = httpx.Client(
            timeout=http_timeout,
            transport=transport,
            headers={"User-Agent": f"mixhouse-client/{__version__}"},
            follow_redirects=False,
        )
        self._sender = Sender(self._http, retry or RetryPolicy())

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self._urls[Family.QUERY]!r}, credentials={self.credentials!r})"

    # -- plumbing -------------------------------------------------------------------------------------

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
            raise ConfigurationError("this call needs the project token: Client(token=...)")
        return self.token

    def _call(
        self,
        method: str,
        family: Family,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
    ) -> Any:
        auth_params: dict[str, str] = {}
        auth: httpx.BasicAuth | None = None
        if authenticated:
            auth, auth_params = self._auth()
        url = self._urls[family] + path
        query = {**auth_params, **(params or {})}

        def build() -> httpx.Request:
            request = self._http.build_request(
                method, url, params=query, data=dict(data) if data else None, json=json_body
            )
            return next(auth.auth_flow(request)) if auth else request

        response = self._sender.send(build)
        try:
            return response.json()
        except ValueError:
            return response.text

    def _app(self, method: str, path: str, body: Any = None) -> Any:
        reply = self._call(method, Family.APP, f"/api/app/projects/{self._project_id()}{path}", json_body=body)
        return reply.get("results") if isinstance(reply, dict) else reply

    # -- ingestion ------------------------------------------------------------------------------------

    def import_events(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        strict: bool = True,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
    ) -> IngestResult:
        """Send events to `/import` (any time in the past) in batches, gzip-compressed, each event given an
        `$insert_id` when it has none. Refused records are in the result; valid ones of the same batch land."""
        auth, auth_params = self._auth()
        prepared = (with_insert_id(e) for e in events)
        params = {**auth_params, "strict": "1" if strict else "0"}
        return self._ingest("/import", prepared, params, auth, max_records=max_records, max_bytes=max_bytes)

    def import_batches(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        strict: bool = True,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
    ) -> Iterator[IngestResult]:
        """As `import_events`, one result per request as it completes (`accepted + len(failed)` records
        each): for progress bars and resumable imports."""
        auth, auth_params = self._auth()
        params = {**auth_params, "strict": "1" if strict else "0"}
        prepared = (with_insert_id(e) for e in events)
        for item in batches(prepared, max_records=max_records, max_bytes=max_bytes):
            yield self._send_batch("/import", item, params, auth)

    def track(self, events: Iterable[Mapping[str, Any]]) -> IngestResult:
        """Send recent events (Mixpanel: the last 5 days) to `/track` with the project token."""
        token = self._token()

        def prepared() -> Iterator[dict[str, Any]]:
            for event in events:
                out = with_insert_id(event)
                out["properties"].setdefault("token", token)
                yield out

        return self._ingest("/track", prepared(), {"strict": "1"}, None)

    def engage(self, updates: Iterable[Mapping[str, Any]]) -> IngestResult:
        """Send user profile updates (`$set`, `$set_once`, `$add`, `$append`, `$union`, `$remove`, `$unset`,
        `$delete`) to `/engage`; `$token` is filled in."""
        return self._profiles("/engage", updates)

    def groups(self, updates: Iterable[Mapping[str, Any]]) -> IngestResult:
        """Send group profile updates (`$group_key`, `$group_id`, an operation) to `/groups`."""
        return self._profiles("/groups", updates)

    def _profiles(self, path: str, updates: Iterable[Mapping[str, Any]]) -> IngestResult:
        token = self._token()
        prepared = ({"$token": token, **u} for u in updates)
        return self._ingest(path, prepared, {"verbose": "1"}, None)

    def _ingest(
        self,
        path: str,
        records: Iterable[Mapping[str, Any]],
        params: dict[str, str],
        auth: httpx.BasicAuth | None,
        *,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
    ) -> IngestResult:
        total = IngestResult()
        for item in batches(records, max_records=max_records, max_bytes=max_bytes):
            result = self._send_batch(path, item, params, auth)
            total.accepted += result.accepted
            total.failed.extend(result.failed)
            total.requests += result.requests
        return total

    def _send_batch(
        self, path: str, item: Batch | Oversized, params: dict[str, str], auth: httpx.BasicAuth | None
    ) -> IngestResult:
        if isinstance(item, Oversized):
            message = f"record of {item.size} bytes exceeds the {MAX_BYTES} bytes a request may carry"
            return IngestResult(0, [FailedRecord(item.index, item.insert_id, None, message)], 0)
        body = item.body()
        headers = {"Content-Type": "application/json"}
        if self.gzip_level:
            body = gzip.compress(body, compresslevel=self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        url = self._urls[Family.INGESTION] + path

        def build() -> httpx.Request:
            request = self._http.build_request("POST", url, params=params, content=body, headers=headers)
            return next(auth.auth_flow(request)) if auth else request

        try:
            response = self._sender.send(build)
        except BadRequest as exc:
            if isinstance(exc.body, dict) and "failed_records" in exc.body:
                return self._partial(item, exc.body)
            raise
        reply = _loads(response)
        if isinstance(reply, dict) and reply.get("status") == 0 and reply.get("error"):
            # /engage and /groups with verbose=1 answer 200 {"status": 0, "error": ...} for a refused batch
            raise BadRequest(response.status_code, reply, method="POST", url=url)
        if reply == 0:
            raise BadRequest(response.status_code, {"error": "request refused (0)"}, method="POST", url=url)
        accepted = item.size
        if isinstance(reply, dict) and isinstance(reply.get("num_records_imported"), int):
            accepted = reply["num_records_imported"]
        return IngestResult(accepted, [], 1)

    @staticmethod
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
            failed = [FailedRecord(item.start + i, item.insert_ids[i], None, message) for i in range(item.size)]
        return IngestResult(accepted, failed, 1)

    # -- identity -------------------------------------------------------------------------------------

    def identify(self, identified_id: str, anon_id: str, *, timestamp: float | None = None) -> IngestResult:
        """Original ID Merge: link an anonymous id to a known user (an `$identify` event on `/track`).
        In Simplified ID Merge projects send `$device_id` and `$user_id` on ordinary events instead."""
        props = {"distinct_id": identified_id, "$identified_id": identified_id, "$anon_id": anon_id}
        return self.track([{"event": "$identify", "properties": {**props, "time": timestamp or time.time()}}])

    def alias(self, alias: str, distinct_id: str, *, timestamp: float | None = None) -> IngestResult:
        """Original ID Merge: make `alias` another id of `distinct_id` (a `$create_alias` event on `/track`)."""
        props = {"distinct_id": distinct_id, "alias": alias, "time": timestamp or time.time()}
        return self.track([{"event": "$create_alias", "properties": props}])

    def merge(self, distinct_id_1: str, distinct_id_2: str, *, timestamp: float | None = None) -> IngestResult:
        """Original ID Merge: merge two ids into one user (a `$merge` event on `/import`, authenticated)."""
        props = {
            "$distinct_ids": [distinct_id_1, distinct_id_2],
            "distinct_id": distinct_id_1,
            "time": timestamp or time.time(),
        }
        return self.import_events([{"event": "$merge", "properties": props}])

    # -- raw export -----------------------------------------------------------------------------------

    def export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        event: str | Sequence[str] | None = None,
        where: str | None = None,
        time_in_ms: bool = False,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every raw event of the range (days inclusive), streamed, one request per day."""
        for chunk in self.export_chunks(
            from_date, to_date, event=event, where=where, time_in_ms=time_in_ms, limit=limit
        ):
            yield from chunk.events()

    def export_chunks(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        event: str | Sequence[str] | None = None,
        where: str | None = None,
        time_in_ms: bool = False,
        limit: int | None = None,
    ) -> Iterator[ExportChunk]:
        """The export as one chunk per day, oldest first. A caller that records the last day it finished
        resumes by starting at the next. With `limit` (a cap over the whole range) it is one chunk."""
        start, end = _day(from_date), _day(to_date)
        if start > end:
            raise ConfigurationError("from_date is after to_date")
        events = [event] if isinstance(event, str) else list(event) if event else None
        common = _params(event=events, where=where, time_in_ms=True if time_in_ms else None, limit=limit)
        if limit is not None:
            yield ExportChunk(start, self, {**common, "from_date": start.isoformat(), "to_date": end.isoformat()})
            return
        day = start
        while day <= end:
            yield ExportChunk(day, self, {**common, "from_date": day.isoformat(), "to_date": day.isoformat()})
            day += timedelta(days=1)

    def _export_lines(self, params: dict[str, str]) -> Iterator[bytes]:
        """The lines of one export request. A stream cut mid-way is requested again and the lines already
        given are skipped: a closed day's export is a stable, time-ordered list."""
        auth, auth_params = self._auth()
        url = self._urls[Family.EXPORT] + "/api/2.0/export"
        query = {**auth_params, **params}

        def build() -> httpx.Request:
            request = self._http.build_request("GET", url, params=query, headers={"Accept-Encoding": "gzip"})
            return next(auth.auth_flow(request))

        given = 0
        restarts = 0
        while True:
            response = self._sender.send(build, stream=True)
            skip = given
            try:
                rest = b""
                for piece in response.iter_bytes():
                    rest += piece
                    lines = rest.split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if not line:
                            continue
                        if skip:
                            skip -= 1
                            continue
                        given += 1
                        yield line
                if rest.strip():
                    if skip:
                        skip -= 1
                    else:
                        given += 1
                        yield rest
                return
            except RETRYABLE_EXCEPTIONS as exc:
                restarts += 1
                if restarts >= self._sender.policy.max_attempts:
                    raise TransportError(f"export stream cut {restarts} times: {exc}", attempts=restarts) from exc
                time.sleep(self._sender.policy.backoff(restarts - 1, self._sender.rng))
            finally:
                response.close()

    # -- Query API ------------------------------------------------------------------------------------

    def query(self, endpoint: str, **params: Any) -> Any:
        """Any Query API endpoint by name (`"events/top"`, `"segmentation/numeric"`, ...): GET
        `/api/query/<endpoint>` with the parameters (lists and dicts JSON-encoded)."""
        return self._call("GET", Family.QUERY, f"/api/query/{endpoint.strip('/')}", params=_params(**params))

    def segmentation(
        self,
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
    ) -> dict[str, Any]:
        """Event counts over time, optionally split by `on`: `{"data": {"series", "values"}, "legend_size"}`."""
        result: dict[str, Any] = self.query(
            "segmentation",
            event=event,
            from_date=_day(from_date),
            to_date=_day(to_date),
            on=on,
            where=where,
            unit=unit,
            interval=interval,
            type=type,
            limit=limit,
        )
        return result

    def funnel(
        self,
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
    ) -> dict[str, Any]:
        """A saved funnel's conversion per date bucket: `{"meta": {"dates"}, "data": {date: ...}}`."""
        result: dict[str, Any] = self.query(
            "funnels",
            funnel_id=funnel_id,
            from_date=_day(from_date),
            to_date=_day(to_date),
            length=length,
            length_unit=length_unit,
            interval=interval,
            unit=unit,
            on=on,
            where=where,
            limit=limit,
        )
        return result

    def funnels_list(self) -> list[dict[str, Any]]:
        """The saved funnels: `[{"funnel_id", "name"}]`."""
        result: list[dict[str, Any]] = self.query("funnels/list")
        return result

    def retention(
        self,
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
    ) -> dict[str, Any]:
        """Cohorts by birth date and how many came back in each interval: `{date: {"counts", "first"}}`."""
        result: dict[str, Any] = self.query(
            "retention",
            from_date=_day(from_date),
            to_date=_day(to_date),
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

    def insights(self, bookmark_id: int) -> dict[str, Any]:
        """A saved Insights report: `{"computed_at", "date_range", "headers", "series"}`."""
        result: dict[str, Any] = self.query("insights", bookmark_id=bookmark_id)
        return result

    def cohorts_list(self) -> list[dict[str, Any]]:
        """The saved cohorts with their current counts."""
        result: list[dict[str, Any]] = self.query("cohorts/list")
        return result

    def activity_stream(
        self, distinct_ids: Sequence[str], from_date: DateLike, to_date: DateLike
    ) -> list[dict[str, Any]]:
        """The events of these users (identity-resolved), oldest first."""
        reply = self.query(
            "stream/query", distinct_ids=list(distinct_ids), from_date=_day(from_date), to_date=_day(to_date)
        )
        events: list[dict[str, Any]] = reply["results"]["events"]
        return events

    def profiles(
        self,
        *,
        where: str | None = None,
        distinct_ids: Sequence[str] | None = None,
        output_properties: Sequence[str] | None = None,
        cohort_id: int | None = None,
        include_all_users: bool | None = None,
        group_key: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """User (or, with `group_key`, group) profiles matching the filters, fetched page by page as the
        iterator is consumed: `{"$distinct_id", "$properties"}` each."""
        form = _params(
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
            reply = self._call("POST", Family.QUERY, "/api/query/engage", data=body)
            results: list[dict[str, Any]] = reply.get("results") or []
            yield from results
            size = reply.get("page_size") or len(results)
            session_id = reply.get("session_id")
            if not results or len(results) < size or not session_id:
                return
            page += 1

    # -- feature flags -------------------------------------------------------------------------------

    def _flags_call(self, path: str, params: dict[str, str]) -> Any:
        """`/flags*` on the ingestion host, as the SDKs call it: Basic with the project token when the client
        has one (what PyPI mixpanel and mixpanel-browser send), else the credentials."""
        if self.token:
            url = self._urls[Family.INGESTION] + path
            auth = httpx.BasicAuth(self.token, "")

            def build() -> httpx.Request:
                return next(auth.auth_flow(self._http.build_request("GET", url, params=params)))

            return self._sender.send(build).json()
        return self._call("GET", Family.INGESTION, path, params=params)

    def flags(self, context: Mapping[str, Any], flag_key: str | None = None) -> dict[str, dict[str, Any]]:
        """Remote evaluation (`GET /flags`): `{flag key: {"variant_key", "variant_value", "experiment_id",
        "is_experiment_active", "is_qa_tester"}}` for the flags `context` gets (`distinct_id` required;
        `device_id`, `custom_properties`, any key a flag hashes), only `flag_key` when given."""
        reply = self._flags_call("/flags", _params(context=dict(context), flag_key=flag_key))
        flags: dict[str, dict[str, Any]] = reply.get("flags") or {} if isinstance(reply, dict) else {}
        return flags

    def flag_definitions(self) -> list[dict[str, Any]]:
        """The project's enabled flags as `GET /flags/definitions` lists them (the `flags` array)."""
        reply = self._flags_call("/flags/definitions", {})
        definitions: list[dict[str, Any]] = reply.get("flags") or [] if isinstance(reply, dict) else reply
        return definitions

    def local_flags(self, definitions: Iterable[Mapping[str, Any]] | None = None) -> LocalFlags:
        """A `LocalFlags` over `definitions` (fetched from `/flags/definitions` when None): evaluation in
        process, bit-exact with `flags()`; cohort-targeted flags are asked of the server through this client."""
        return LocalFlags(self.flag_definitions() if definitions is None else definitions, self.flags)

    # -- saved objects (mixhouse's App API) -----------------------------------------------------------

    @property
    def saved_funnels(self) -> SavedObjects:
        """Create, read, change and delete saved funnels (`/api/app/projects/{id}/funnels`)."""
        return SavedObjects(self, "funnels")

    @property
    def saved_cohorts(self) -> SavedObjects:
        """Saved cohorts (`/api/app/projects/{id}/cohorts`)."""
        return SavedObjects(self, "cohorts")

    @property
    def saved_reports(self) -> SavedObjects:
        """Saved Insights reports (`/api/app/projects/{id}/bookmarks`)."""
        return SavedObjects(self, "bookmarks")


class SavedObjects:
    """One collection of the App API: `list`, `get`, `create`, `update`, `delete`."""

    def __init__(self, client: Client, collection: str) -> None:
        self._client = client
        self._collection = collection

    def list(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._client._app("GET", f"/{self._collection}")
        return result

    def get(self, object_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._client._app("GET", f"/{self._collection}/{object_id}")
        return result

    def create(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._client._app("POST", f"/{self._collection}", dict(definition))
        return result

    def update(self, object_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._client._app("PATCH", f"/{self._collection}/{object_id}", dict(changes))
        return result

    def delete(self, object_id: int) -> None:
        self._client._app("DELETE", f"/{self._collection}/{object_id}")


def _loads(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        text = response.text.strip()
        return int(text) if text in ("0", "1") else text
