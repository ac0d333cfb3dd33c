"""The synchronous client: one object per project, one method per API call, retries and batching inside.

Each method is an operation of `_ops.py` (where every call is described once) driven over httpx.Client;
`AsyncClient` (`_async.py`) drives the same operations over httpx.AsyncClient.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import httpx

from mixhouse_client import _ops as ops
from mixhouse_client._batching import Batch, Oversized, loads
from mixhouse_client._config import Credentials, Family, Region
from mixhouse_client._exceptions import MixpanelError
from mixhouse_client._flags import LocalFlags
from mixhouse_client._ops import Auth, Call, DateLike, Emit, FailedRecord, Flow, IngestResult, Settings, Stream
from mixhouse_client._retry import RETRYABLE_EXCEPTIONS, RetryPolicy
from mixhouse_client._transport import Lines, Sender

__version__ = "0.1.0"
__all__ = ["Client", "ExportChunk", "FailedRecord", "IngestResult", "__version__"]

P = ParamSpec("P")
T = TypeVar("T")


def method_signature(build: Callable[..., Any], skip: int) -> inspect.Signature:
    """The signature of an operation as a method: `self` for its first `skip` parameters (the settings,
    a collection), no return annotation (the operation's is a generator's)."""
    signature = inspect.signature(build)
    parameters = list(signature.parameters.values())
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[self_parameter, *parameters[skip:]], return_annotation=inspect.Signature.empty)


def as_method(method: Callable[..., Any], build: Callable[..., Any], skip: int = 1) -> None:
    functools.update_wrapper(method, build)
    del method.__wrapped__  # type: ignore[attr-defined]
    setattr(method, "__signature__", method_signature(build, skip))  # noqa: B010


class _Host(Protocol):
    @property
    def _ctx(self) -> Settings: ...

    def _run(self, flow: Flow[T]) -> T: ...

    def _iterate(self, stream: Stream[T]) -> Iterator[T]: ...


class _Scoped(_Host, Protocol):
    @property
    def _scope(self) -> str: ...


def sync_op(build: Callable[Concatenate[Settings, P], Flow[T]]) -> Callable[Concatenate[_Host, P], T]:
    """A method running the operation to its result."""

    def method(self: _Host, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(self._ctx, *args, **kwargs))

    as_method(method, build)
    return method


def sync_stream(build: Callable[Concatenate[Settings, P], Stream[T]]) -> Callable[Concatenate[_Host, P], Iterator[T]]:
    """A method returning an iterator over the operation's items, run as the iterator is consumed."""

    def method(self: _Host, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self._iterate(build(self._ctx, *args, **kwargs))

    as_method(method, build)
    return method


def sync_scoped(build: Callable[Concatenate[Settings, str, P], Flow[T]]) -> Callable[Concatenate[_Scoped, P], T]:
    """A method of a namespace over one collection (saved funnels, cohorts, reports)."""

    def method(self: _Scoped, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(self._ctx, self._scope, *args, **kwargs))

    as_method(method, build, skip=2)
    return method


@dataclass(frozen=True)
class ExportChunk:
    """One day of a raw export. `lines()` streams its JSON lines (bytes, without the newline)."""

    day: date
    _lines: Callable[[], Iterator[bytes]]

    def lines(self) -> Iterator[bytes]:
        return self._lines()

    def events(self) -> Iterator[dict[str, Any]]:
        for line in self.lines():
            yield loads(line)


class Client(Settings):
    """A client of Mixpanel's HTTP APIs, for Mixpanel itself or a mixhouse server.

    `base_url` sends every API family to one server (mixhouse); without it, `region` picks Mixpanel's hosts
    (us, eu or in). `credentials` is a `ServiceAccount` (recommended) or a `ProjectSecret`; `token` is the
    project token that `/track`, `/engage` and `/groups` need. `timeout` is seconds (or an `httpx.Timeout`),
    `retry` a `RetryPolicy`, `transport` any httpx transport (`AppTransport` for an in-process app).
    `workspace_id` puts the feature-flag management routes under `/workspaces/{id}` (Mixpanel's layout).
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
        workspace_id: int | None = None,
        gdpr_token: str | None = None,
    ) -> None:
        super().__init__(base_url, region, credentials, token, gzip_level, workspace_id, gdpr_token)
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

    # -- driving operations ---------------------------------------------------------------------------

    @property
    def _ctx(self) -> Settings:
        return self

    def _send(self, call: Call) -> Any:
        """One call, with retries: the decoded reply."""
        return ops.decode(self._sender.send(self._request_factory(self._http, call), once=call.once))

    def _run(self, flow: Flow[T]) -> T:
        reply: Any = None
        error: MixpanelError | None = None
        while True:
            try:
                call = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                return cast(T, stop.value)
            reply, error = None, None
            try:
                reply = self._send(call)
            except MixpanelError as exc:
                error = exc

    def _iterate(self, stream: Stream[T]) -> Iterator[T]:
        reply: Any = None
        error: MixpanelError | None = None
        while True:
            try:
                step = stream.throw(error) if error is not None else stream.send(reply)
            except StopIteration:
                return
            reply, error = None, None
            if isinstance(step, Emit):
                yield from step.items
            elif step.stream is not None:
                lines = self._lines(step)
                yield from cast(Iterator[T], lines if step.stream is ops.raw else map(step.stream, lines))
            else:
                try:
                    reply = self._send(step)
                except MixpanelError as exc:
                    error = exc

    def _lines(self, call: Call) -> Iterator[bytes]:
        """A streamed body's lines. A stream cut mid-way is requested again, the lines given skipped."""
        build = self._request_factory(self._http, call)
        lines = Lines()
        restarts = 0
        while True:
            response = self._sender.send(build, stream=True)
            try:
                for piece in response.iter_bytes():
                    yield from lines.feed(piece)
                yield from lines.end()
                return
            except RETRYABLE_EXCEPTIONS as exc:
                restarts += 1
                delay = self._sender.after_cut_stream(exc, restarts)
            finally:
                response.close()
            time.sleep(delay)
            lines.restart()

    def _send_batch(self, item: Batch | Oversized, query: Mapping[str, str]) -> IngestResult:
        """One `/import` request (the command line's workers send batches themselves)."""
        return self._run(ops.send_batch(self, "/import", item, query, Auth.CREDENTIALS))

    # -- ingestion ------------------------------------------------------------------------------------

    import_events = sync_op(ops.import_events)
    import_batches = sync_stream(ops.import_batches)
    track = sync_op(ops.track)
    engage = sync_op(ops.engage)
    groups = sync_op(ops.groups)

    # -- identity -------------------------------------------------------------------------------------

    identify = sync_op(ops.identify)
    alias = sync_op(ops.alias)
    merge = sync_op(ops.merge)

    # -- raw export -----------------------------------------------------------------------------------

    export = sync_stream(ops.export)

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
        plan = ops.export_plan(from_date, to_date, event=event, where=where, time_in_ms=time_in_ms, limit=limit)
        for day, query in plan:
            yield ExportChunk(day, functools.partial(self._export_lines, query))

    def _export_lines(self, query: dict[str, str]) -> Iterator[bytes]:
        return self._iterate(ops.export_lines(self, query))

    # -- Query API ------------------------------------------------------------------------------------

    query = sync_op(ops.query)
    segmentation = sync_op(ops.segmentation)
    funnel = sync_op(ops.funnel)
    funnels_list = sync_op(ops.funnels_list)
    retention = sync_op(ops.retention)
    insights = sync_op(ops.insights)
    cohorts_list = sync_op(ops.cohorts_list)
    activity_stream = sync_op(ops.activity_stream)
    profiles = sync_stream(ops.profiles)
    jql = sync_op(ops.jql)

    # -- feature flags -------------------------------------------------------------------------------

    flags = sync_op(ops.flags)
    flag_definitions = sync_op(ops.flag_definitions)

    def local_flags(self, definitions: Iterable[Mapping[str, Any]] | None = None) -> LocalFlags:
        """A `LocalFlags` over `definitions` (fetched from `/flags/definitions` when None): evaluation in
        process, bit-exact with `flags()`; cohort-targeted flags are asked of the server through this client."""
        return LocalFlags(self.flag_definitions() if definitions is None else definitions, self.flags)

    @property
    def feature_flags(self) -> FeatureFlags:
        """Manage the project's feature flags (the App API's `feature-flags` routes)."""
        return FeatureFlags(self)

    # -- annotations ----------------------------------------------------------------------------------

    @property
    def annotations(self) -> Annotations:
        """Annotations and their tags (the App API, `/api/app/projects/{id}/annotations`)."""
        return Annotations(self)

    @property
    def legacy_annotations(self) -> LegacyAnnotations:
        """Annotations through `/api/2.0/annotations` (no tags; any Query API credentials)."""
        return LegacyAnnotations(self)

    # -- Lexicon, GDPR, lookup tables, service accounts -----------------------------------------------------------------

    @property
    def schemas(self) -> Schemas:
        """Lexicon schemas, the data dictionary (`/api/app/projects/{id}/schemas`)."""
        return Schemas(self)

    @property
    def gdpr(self) -> GDPR:
        """GDPR and CCPA data retrievals and deletions (API v3; `gdpr_token` and `token` needed)."""
        return GDPR(self)

    @property
    def lookup_tables(self) -> LookupTables:
        """Lookup tables (`/lookup-tables`): list, replace."""
        return LookupTables(self)

    @property
    def pipelines(self) -> Pipelines:
        """Data pipelines (`/api/2.0/nessie/pipeline/*`)."""
        return Pipelines(self)

    @property
    def service_accounts(self) -> ServiceAccounts:
        """The Service Accounts API (`/api/app/organizations/{id}/service-accounts`)."""
        return ServiceAccounts(self)

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


class _Namespace:
    """A group of methods of one client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def _ctx(self) -> Settings:
        return self._client

    def _run(self, flow: Flow[T]) -> T:
        return self._client._run(flow)

    def _iterate(self, stream: Stream[T]) -> Iterator[T]:
        return self._client._iterate(stream)


class SavedObjects(_Namespace):
    """One collection of the App API: `list`, `get`, `create`, `update`, `delete`."""

    def __init__(self, client: Client, collection: str) -> None:
        super().__init__(client)
        self._collection = collection

    @property
    def _scope(self) -> str:
        return self._collection

    list = sync_scoped(ops.saved_list)
    get = sync_scoped(ops.saved_get)
    create = sync_scoped(ops.saved_create)
    update = sync_scoped(ops.saved_update)
    delete = sync_scoped(ops.saved_delete)


class Annotations(_Namespace):
    """Annotations (`/api/app/projects/{id}/annotations`): `list`, `get`, `create`, `update`, `delete`,
    and tags: `tags`, `create_tag`."""

    list = sync_op(ops.annotations_list)
    get = sync_op(ops.annotations_get)
    create = sync_op(ops.annotations_create)
    update = sync_op(ops.annotations_update)
    delete = sync_op(ops.annotations_delete)
    tags = sync_op(ops.annotation_tags)
    create_tag = sync_op(ops.annotations_create_tag)


class LegacyAnnotations(_Namespace):
    """Annotations through the Query API family's `/api/2.0/annotations`: `list`, `create`, `update`, `delete`."""

    list = sync_op(ops.legacy_annotations_list)
    create = sync_op(ops.legacy_annotations_create)
    update = sync_op(ops.legacy_annotations_update)
    delete = sync_op(ops.legacy_annotations_delete)


class FeatureFlags(_Namespace):
    """Feature-flag management (the App API's `feature-flags` routes)."""

    list = sync_op(ops.feature_flags_list)
    get = sync_op(ops.feature_flags_get)
    create = sync_op(ops.feature_flags_create)
    replace = sync_op(ops.feature_flags_replace)
    update = sync_op(ops.feature_flags_update)
    enable = sync_op(ops.feature_flags_enable)
    disable = sync_op(ops.feature_flags_disable)
    delete = sync_op(ops.feature_flags_delete)
    archive = sync_op(ops.feature_flags_archive)
    restore = sync_op(ops.feature_flags_restore)
    set_test_users = sync_op(ops.feature_flags_set_test_users)
    readout = sync_op(ops.feature_flags_readout)


class GDPR(_Namespace):
    """GDPR/CCPA API v3: retrievals and deletions of users' data."""

    create_retrieval = sync_op(ops.gdpr_create_retrieval)
    retrieval = sync_op(ops.gdpr_retrieval)
    cancel_retrieval = sync_op(ops.gdpr_cancel_retrieval)
    retrieval_file = sync_op(ops.gdpr_retrieval_file)
    create_deletion = sync_op(ops.gdpr_create_deletion)
    deletion = sync_op(ops.gdpr_deletion)
    cancel_deletion = sync_op(ops.gdpr_cancel_deletion)


class LookupTables(_Namespace):
    """Lookup tables: `list()`, `replace(table_id, rows)`."""

    list = sync_op(ops.lookup_tables_list)
    replace = sync_op(ops.lookup_tables_replace)
    create = sync_op(ops.lookup_tables_create)
    get = sync_op(ops.lookup_tables_get)
    delete = sync_op(ops.lookup_tables_delete)


class Pipelines(_Namespace):
    """Data pipelines: `create(type, ...)`, `edit`, `pause`, `resume`, `cancel`, `list()`, `status`, `timeline`."""

    create = sync_op(ops.pipelines_create)
    edit = sync_op(ops.pipelines_edit)
    pause = sync_op(ops.pipelines_pause)
    resume = sync_op(ops.pipelines_resume)
    cancel = sync_op(ops.pipelines_cancel)
    list = sync_op(ops.pipelines_list)
    status = sync_op(ops.pipelines_status)
    timeline = sync_op(ops.pipelines_timeline)


class Schemas(_Namespace):
    """Lexicon schemas: `list(entity_type=None)`, `get(entity_type, name)`, `upsert(entries, truncate=False)`,
    `put(entity_type, name, schema)`, `delete(entity_type=None, name=None)`."""

    list = sync_op(ops.schemas_list)
    get = sync_op(ops.schemas_get)
    upsert = sync_op(ops.schemas_upsert)
    put = sync_op(ops.schemas_put)
    delete = sync_op(ops.schemas_delete)


class ServiceAccounts(_Namespace):
    """The Service Accounts API: an organisation's accounts, and the accounts of the client's project."""

    list = sync_op(ops.service_accounts_list)
    create = sync_op(ops.service_accounts_create)
    get = sync_op(ops.service_accounts_get)
    delete = sync_op(ops.service_accounts_delete)
    add_to_project = sync_op(ops.service_accounts_add_to_project)
    remove_from_project = sync_op(ops.service_accounts_remove_from_project)
    of_project = sync_op(ops.service_accounts_of_project)
