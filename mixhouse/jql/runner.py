"""Run one JQL script: a worker slot, a fresh sandbox, the scans its source asks for, the answer as JSON.

Scripts run on the calling thread (a Query API worker thread, never the event loop), at most
`workers` at a time; V8 runs them on threads of its own and releases the GIL, and every call into it
carries what is left of the run's time, so a runaway script ends with an error at its deadline while
other requests are served.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson

from mixhouse.domain.limits import remaining_seconds
from mixhouse.domain.project import Project
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, NotSupportedByEngine, RateLimited
from mixhouse.jql.pushdown import NotPushable, Pipeline, answer
from mixhouse.jql.sandbox import Sandbox, ScriptError
from mixhouse.jql.settings import JqlSettings
from mixhouse.jql.source import (
    SelectorSet,
    combine,
    event_columns,
    events_scan,
    exact_filter,
    profiles_scan,
    selector_set,
    user_columns,
)

T = TypeVar("T")

_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _slot(workers: int) -> threading.BoundedSemaphore:
    with _slots_lock:
        if workers not in _slots:
            _slots[workers] = threading.BoundedSemaphore(workers)
        return _slots[workers]


def parse_params(text: str | None) -> Any:
    """`params`: JSON text, exposed to the script as the global `params` (absent: an empty object)."""
    if text is None or text.strip() == "":
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"params must be JSON: {exc}") from exc


def run_script(engine: Engine, project: Project, script: str, params: Any, settings: JqlSettings) -> bytes:
    """The script's final collection as JSON text (an array)."""
    if not script.strip():
        raise BadRequest("Missing required parameter: script")
    slot = _slot(settings.workers)
    if not slot.acquire(timeout=settings.queue_seconds):
        raise RateLimited(f"JQL: {settings.workers} scripts are running; try again shortly", retry_after=5)
    try:
        timeout = settings.timeout_seconds
        left = remaining_seconds()  # the request's own deadline (the project's or the server's), if shorter
        if left is not None:
            timeout = max(0.001, min(timeout, left))
        with Sandbox(
            timeout_seconds=timeout, max_memory_mb=settings.max_memory_mb, max_output_mb=settings.max_output_mb
        ) as sandbox:
            sandbox.load(script, params)
            source = sandbox.plan()
            pushed = _pushed_down(engine, project, source, settings) if settings.pushdown else None
            if pushed is not None:
                sandbox.remaining()  # the engine's query counts against the script's time too
                if len(pushed) > sandbox.max_output_bytes:
                    raise ScriptError(
                        f"the script's result is larger than the JQL output limit of {sandbox.max_output_bytes} bytes"
                    )
                return pushed
            _feed(engine, project, source, sandbox, settings)
            return sandbox.finish()
    finally:
        slot.release()


def _pushed_down(engine: Engine, project: Project, source: dict[str, Any], settings: JqlSettings) -> bytes | None:
    """The answer of a pipeline the engine answers whole (pushdown.py), or None: run it in JavaScript."""
    described = source.get("pushdown")
    if source["kind"] != "events" or not described:
        return None
    selectors = selector_set(source["event_selectors"], project.timezone, "event_selectors")
    if selectors.checks:  # mixed selectors are checked event by event, in Python
        return None
    try:
        pipeline = Pipeline.of(described)
        scan = events_scan(project, source, selectors, settings.batch_rows, settings.resolve_identity)
        spec = pipeline.spec(scan)
        return answer(pipeline, spec, engine.query(spec))
    except (NotPushable, NotSupportedByEngine):  # an engine without the aggregate: JavaScript answers
        return None


def _feed(engine: Engine, project: Project, source: dict[str, Any], sandbox: Sandbox, settings: JqlSettings) -> None:
    tz = project.timezone
    kind = source["kind"]
    if kind == "people":
        people = selector_set(source["user_selectors"], tz, "user_selectors")
        _push_profiles(engine, project, people, sandbox, settings, keep=None)
        return
    if kind == "events":
        selectors = selector_set(source["event_selectors"], tz, "event_selectors")
        _push_events(engine, project, source, selectors, sandbox, settings, None, source["user_order"])
        return
    events_source = source["events"]
    people = selector_set(source["people"]["user_selectors"], tz, "user_selectors")
    selectors = combine(
        selector_set(events_source["event_selectors"], tz, "event_selectors"),
        selector_set(source["selectors"], tz, "join selectors"),
    )
    # The exact (in-Python) check of mixed selectors needs the profiles when a selector reads user[...].
    users: dict[str, Any] | None = {} if selectors.checks else None
    _push_profiles(engine, project, people, sandbox, settings, keep=users)
    _push_events(engine, project, events_source, selectors, sandbox, settings, users, source["user_order"])


def _push_profiles(
    engine: Engine,
    project: Project,
    selectors: SelectorSet,
    sandbox: Sandbox,
    settings: JqlSettings,
    keep: dict[str, Any] | None,
) -> None:
    for batch in engine.scan(profiles_scan(project, selectors, settings.batch_rows)):
        sandbox.remaining()
        if selectors.checks:
            batch = exact_filter(batch, selectors, None)
        if keep is not None:
            for did, props in zip(
                batch.column("distinct_id").to_pylist(), batch.column("properties").to_pylist(), strict=True
            ):
                keep[did] = orjson.loads(props) if props else {}
        sandbox.push_users(user_columns(batch))


def _push_events(
    engine: Engine,
    project: Project,
    source: dict[str, Any],
    selectors: SelectorSet,
    sandbox: Sandbox,
    settings: JqlSettings,
    users: dict[str, Any] | None,
    user_order: bool,
) -> None:
    query = events_scan(
        project, source, selectors, settings.batch_rows, settings.resolve_identity, user_order=user_order
    )

    def encoded() -> Iterator[str]:
        for batch in engine.scan(query):
            if selectors.checks:
                batch = exact_filter(batch, selectors, users)
                if len(batch) == 0:
                    continue
            yield event_columns(batch, project.timezone)

    # the scan counts against the script's time too: waiting for a batch checks the deadline
    for columns in prefetched(encoded, depth=2, check=sandbox.remaining):
        sandbox.push_events(columns)


_DONE = object()


def prefetched(produce: Callable[[], Iterator[T]], depth: int, check: Callable[[], object]) -> Iterator[T]:
    """`produce()`'s items, made on a thread of their own up to `depth` ahead of the consumer: the store's
    scan and the encoding overlap with the script running in V8 (which holds no GIL). An error on either
    side stops both; the producer's generator is closed on its own thread. `check` runs every 0.1 s
    while the consumer waits (it raises to give up, e.g. at the deadline)."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        iterator = produce()
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    context = contextvars.copy_context()  # the request's deadline travels with the scan
    thread = threading.Thread(target=context.run, args=(run,), name="jql-scan", daemon=True)
    thread.start()
    try:
        while True:
            check()
            try:
                item = items.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


__all__ = ["ScriptError", "parse_params", "run_script"]
