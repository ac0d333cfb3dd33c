"""The asynchronous client: `Client`'s calls over httpx.AsyncClient, for asyncio (or trio) programs.

It drives the operations of `_ops.py`, as `Client` does, and sends through the same request builder, retry
policy and budget (`_transport.AsyncSender` waits with `anyio.sleep`), so both raise the same exceptions.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import anyio
import httpx

from mixhouse_client import _ops as ops
from mixhouse_client._batching import loads
from mixhouse_client._client import __version__, as_method
from mixhouse_client._config import Credentials, Family, Region
from mixhouse_client._exceptions import MixpanelError
from mixhouse_client._ops import Call, DateLike, Emit, Flow, Settings, Stream
from mixhouse_client._retry import RETRYABLE_EXCEPTIONS, RetryPolicy
from mixhouse_client._transport import AsyncSender, Lines

__all__ = ["AsyncClient", "AsyncExportChunk"]

P = ParamSpec("P")
T = TypeVar("T")


class _AsyncHost(Protocol):
    @property
    def _ctx(self) -> Settings: ...

    async def _run(self, flow: Flow[T]) -> T: ...

    def _iterate(self, stream: Stream[T]) -> AsyncIterator[T]: ...


class _AsyncScoped(_AsyncHost, Protocol):
    @property
    def _scope(self) -> str: ...


def async_op(
    build: Callable[Concatenate[Settings, P], Flow[T]],
) -> Callable[Concatenate[_AsyncHost, P], Coroutine[Any, Any, T]]:
    """A coroutine method running the operation to its result."""

    async def method(self: _AsyncHost, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(self._ctx, *args, **kwargs))

    as_method(method, build)
    return method


def async_stream(
    build: Callable[Concatenate[Settings, P], Stream[T]],
) -> Callable[Concatenate[_AsyncHost, P], AsyncIterator[T]]:
    """A method returning an async iterator over the operation's items, run as it is consumed."""

    def method(self: _AsyncHost, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        return self._iterate(build(self._ctx, *args, **kwargs))

    as_method(method, build)
    return method


def async_scoped(
    build: Callable[Concatenate[Settings, str, P], Flow[T]],
) -> Callable[Concatenate[_AsyncScoped, P], Coroutine[Any, Any, T]]:
    async def method(self: _AsyncScoped, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(self._ctx, self._scope, *args, **kwargs))

    as_method(method, build, skip=2)
    return method


@dataclass(frozen=True)
class AsyncExportChunk:
    """One day of a raw export: `async for line in chunk.lines()` (bytes), or `chunk.events()`."""

    day: date
    _lines: Callable[[], AsyncIterator[bytes]]

    def lines(self) -> AsyncIterator[bytes]:
        return self._lines()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        async for line in self.lines():
            yield loads(line)


class AsyncClient(Settings):
    """`Client` for async code: the same arguments (`transport` an `httpx.AsyncBaseTransport`, e.g.
    `httpx.ASGITransport(app)`), the same methods as coroutines, `export`, `profiles` and `import_batches`
    as async iterators. `async with AsyncClient(...) as mp:` closes it."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        region: Region | str = Region.US,
        credentials: Credentials | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        gzip_level: int = 1,
        workspace_id: int | None = None,
        gdpr_token: str | None = None,
    ) -> None:
        super().__init__(base_url, region, credentials, token, gzip_level, workspace_id, gdpr_token)
        http_timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout, connect=10.0)
        self._http = httpx.AsyncClient(
            timeout=http_timeout,
            transport=transport,
            headers={"User-Agent": f"mixhouse-client/{__version__}"},
            follow_redirects=False,
        )
        self._sender = AsyncSender(self._http, retry or RetryPolicy())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        await self._http.__aenter__()  # enters the transport too (AsyncAppTransport starts the app)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self._urls[Family.QUERY]!r}, credentials={self.credentials!r})"

    # -- driving operations ---------------------------------------------------------------------------

    @property
    def _ctx(self) -> Settings:
        return self

    async def _send(self, call: Call) -> Any:
        return ops.decode(await self._sender.send(self._request_factory(self._http, call), once=call.once))

    async def _run(self, flow: Flow[T]) -> T:
        reply: Any = None
        error: MixpanelError | None = None
        while True:
            try:
                call = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                return cast(T, stop.value)
            reply, error = None, None
            try:
                reply = await self._send(call)
            except MixpanelError as exc:
                error = exc

    async def _iterate(self, stream: Stream[T]) -> AsyncIterator[T]:
        reply: Any = None
        error: MixpanelError | None = None
        while True:
            try:
                step = stream.throw(error) if error is not None else stream.send(reply)
            except StopIteration:
                return
            reply, error = None, None
            if isinstance(step, Emit):
                for item in step.items:
                    yield item
            elif step.stream is not None:
                convert = None if step.stream is ops.raw else step.stream
                async for line in self._lines(step):
                    yield cast(T, convert(line) if convert else line)
            else:
                try:
                    reply = await self._send(step)
                except MixpanelError as exc:
                    error = exc

    async def _lines(self, call: Call) -> AsyncIterator[bytes]:
        build = self._request_factory(self._http, call)
        lines = Lines()
        restarts = 0
        while True:
            response = await self._sender.send(build, stream=True)
            try:
                async for piece in response.aiter_bytes():
                    for line in lines.feed(piece):
                        yield line
                for line in lines.end():
                    yield line
                return
            except RETRYABLE_EXCEPTIONS as exc:
                restarts += 1
                delay = self._sender.after_cut_stream(exc, restarts)
            finally:
                await response.aclose()
            await anyio.sleep(delay)
            lines.restart()

    # -- the calls: as Client's -----------------------------------------------------------------------

    import_events = async_op(ops.import_events)
    import_batches = async_stream(ops.import_batches)
    track = async_op(ops.track)
    engage = async_op(ops.engage)
    groups = async_op(ops.groups)
    identify = async_op(ops.identify)
    alias = async_op(ops.alias)
    merge = async_op(ops.merge)
    export = async_stream(ops.export)
    query = async_op(ops.query)
    segmentation = async_op(ops.segmentation)
    funnel = async_op(ops.funnel)
    funnels_list = async_op(ops.funnels_list)
    retention = async_op(ops.retention)
    insights = async_op(ops.insights)
    cohorts_list = async_op(ops.cohorts_list)
    activity_stream = async_op(ops.activity_stream)
    profiles = async_stream(ops.profiles)
    jql = async_op(ops.jql)
    flags = async_op(ops.flags)
    flag_definitions = async_op(ops.flag_definitions)

    def export_chunks(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        event: str | Sequence[str] | None = None,
        where: str | None = None,
        time_in_ms: bool = False,
        limit: int | None = None,
    ) -> list[AsyncExportChunk]:
        """As `Client.export_chunks`: one chunk per day, oldest first (a list: making it sends nothing)."""
        plan = ops.export_plan(from_date, to_date, event=event, where=where, time_in_ms=time_in_ms, limit=limit)
        return [AsyncExportChunk(day, functools.partial(self._export_lines, query)) for day, query in plan]

    def _export_lines(self, query: dict[str, str]) -> AsyncIterator[bytes]:
        return self._iterate(ops.export_lines(self, query))

    @property
    def feature_flags(self) -> AsyncFeatureFlags:
        return AsyncFeatureFlags(self)

    @property
    def annotations(self) -> AsyncAnnotations:
        return AsyncAnnotations(self)

    @property
    def legacy_annotations(self) -> AsyncLegacyAnnotations:
        return AsyncLegacyAnnotations(self)

    @property
    def schemas(self) -> AsyncSchemas:
        return AsyncSchemas(self)

    @property
    def gdpr(self) -> AsyncGDPR:
        return AsyncGDPR(self)

    @property
    def lookup_tables(self) -> AsyncLookupTables:
        return AsyncLookupTables(self)

    @property
    def pipelines(self) -> AsyncPipelines:
        return AsyncPipelines(self)

    @property
    def service_accounts(self) -> AsyncServiceAccounts:
        return AsyncServiceAccounts(self)

    @property
    def saved_funnels(self) -> AsyncSavedObjects:
        return AsyncSavedObjects(self, "funnels")

    @property
    def saved_cohorts(self) -> AsyncSavedObjects:
        return AsyncSavedObjects(self, "cohorts")

    @property
    def saved_reports(self) -> AsyncSavedObjects:
        return AsyncSavedObjects(self, "bookmarks")


class _AsyncNamespace:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @property
    def _ctx(self) -> Settings:
        return self._client

    async def _run(self, flow: Flow[T]) -> T:
        return await self._client._run(flow)

    def _iterate(self, stream: Stream[T]) -> AsyncIterator[T]:
        return self._client._iterate(stream)


class AsyncSavedObjects(_AsyncNamespace):
    def __init__(self, client: AsyncClient, collection: str) -> None:
        super().__init__(client)
        self._collection = collection

    @property
    def _scope(self) -> str:
        return self._collection

    list = async_scoped(ops.saved_list)
    get = async_scoped(ops.saved_get)
    create = async_scoped(ops.saved_create)
    update = async_scoped(ops.saved_update)
    delete = async_scoped(ops.saved_delete)


class AsyncAnnotations(_AsyncNamespace):
    list = async_op(ops.annotations_list)
    get = async_op(ops.annotations_get)
    create = async_op(ops.annotations_create)
    update = async_op(ops.annotations_update)
    delete = async_op(ops.annotations_delete)
    tags = async_op(ops.annotation_tags)
    create_tag = async_op(ops.annotations_create_tag)


class AsyncLegacyAnnotations(_AsyncNamespace):
    list = async_op(ops.legacy_annotations_list)
    create = async_op(ops.legacy_annotations_create)
    update = async_op(ops.legacy_annotations_update)
    delete = async_op(ops.legacy_annotations_delete)


class AsyncFeatureFlags(_AsyncNamespace):
    list = async_op(ops.feature_flags_list)
    get = async_op(ops.feature_flags_get)
    create = async_op(ops.feature_flags_create)
    replace = async_op(ops.feature_flags_replace)
    update = async_op(ops.feature_flags_update)
    enable = async_op(ops.feature_flags_enable)
    disable = async_op(ops.feature_flags_disable)
    delete = async_op(ops.feature_flags_delete)
    archive = async_op(ops.feature_flags_archive)
    restore = async_op(ops.feature_flags_restore)
    set_test_users = async_op(ops.feature_flags_set_test_users)
    readout = async_op(ops.feature_flags_readout)


class AsyncGDPR(_AsyncNamespace):
    """GDPR/CCPA API v3: retrievals and deletions of users' data."""

    create_retrieval = async_op(ops.gdpr_create_retrieval)
    retrieval = async_op(ops.gdpr_retrieval)
    cancel_retrieval = async_op(ops.gdpr_cancel_retrieval)
    retrieval_file = async_op(ops.gdpr_retrieval_file)
    create_deletion = async_op(ops.gdpr_create_deletion)
    deletion = async_op(ops.gdpr_deletion)
    cancel_deletion = async_op(ops.gdpr_cancel_deletion)


class AsyncLookupTables(_AsyncNamespace):
    """Lookup tables: `list()`, `replace(table_id, rows)`."""

    list = async_op(ops.lookup_tables_list)
    replace = async_op(ops.lookup_tables_replace)
    create = async_op(ops.lookup_tables_create)
    get = async_op(ops.lookup_tables_get)
    delete = async_op(ops.lookup_tables_delete)


class AsyncPipelines(_AsyncNamespace):
    """Data pipelines: `create(type, ...)`, `edit`, `pause`, `resume`, `cancel`, `list()`, `status`, `timeline`."""

    create = async_op(ops.pipelines_create)
    edit = async_op(ops.pipelines_edit)
    pause = async_op(ops.pipelines_pause)
    resume = async_op(ops.pipelines_resume)
    cancel = async_op(ops.pipelines_cancel)
    list = async_op(ops.pipelines_list)
    status = async_op(ops.pipelines_status)
    timeline = async_op(ops.pipelines_timeline)


class AsyncSchemas(_AsyncNamespace):
    """Lexicon schemas: `list(entity_type=None)`, `get(entity_type, name)`, `upsert(entries, truncate=False)`,
    `put(entity_type, name, schema)`, `delete(entity_type=None, name=None)`."""

    list = async_op(ops.schemas_list)
    get = async_op(ops.schemas_get)
    upsert = async_op(ops.schemas_upsert)
    put = async_op(ops.schemas_put)
    delete = async_op(ops.schemas_delete)


class AsyncServiceAccounts(_AsyncNamespace):
    """The Service Accounts API: an organisation's accounts, and the accounts of the client's project."""

    list = async_op(ops.service_accounts_list)
    create = async_op(ops.service_accounts_create)
    get = async_op(ops.service_accounts_get)
    delete = async_op(ops.service_accounts_delete)
    add_to_project = async_op(ops.service_accounts_add_to_project)
    remove_from_project = async_op(ops.service_accounts_remove_from_project)
    of_project = async_op(ops.service_accounts_of_project)
