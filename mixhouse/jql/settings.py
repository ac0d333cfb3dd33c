"""JQL's limits: the `jql_*` fields of the server's one Settings object (mixhouse/settings.py, the table in
docs/operations.md), handed to each request's handler through a context variable set by the Query API's
HTTP layer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from mixhouse.settings import Settings


@dataclass(frozen=True)
class JqlSettings:
    """timeout_seconds   wall time of one script, reading included
    max_memory_mb      the JavaScript heap of one script
    workers            scripts that run at once (each has its own V8 isolate)
    queue_seconds      how long a script waits for a free worker before a 429
    max_output_mb      the largest answer (JSON text)
    batch_rows         events handed to JavaScript per batch
    resolve_identity   distinct ids resolved by ID Merge as in every report (False: as ingested)
    pushdown           the common aggregate shapes answered by the engine (False: always in JavaScript)
    """

    timeout_seconds: float = 120.0
    max_memory_mb: int = 512
    workers: int = 2
    queue_seconds: float = 30.0
    max_output_mb: int = 256
    batch_rows: int = 10_000
    resolve_identity: bool = True
    pushdown: bool = True

    @classmethod
    def of(cls, settings: Settings) -> JqlSettings:
        return cls(
            timeout_seconds=settings.jql_timeout_seconds,
            max_memory_mb=settings.jql_max_memory_mb,
            workers=settings.jql_workers,
            queue_seconds=settings.jql_queue_seconds,
            max_output_mb=settings.jql_max_output_mb,
            batch_rows=settings.jql_batch_rows,
            resolve_identity=settings.jql_resolve_identity,
            pushdown=settings.jql_pushdown,
        )


_CURRENT: ContextVar[JqlSettings | None] = ContextVar("mixhouse_jql_settings", default=None)


def current() -> JqlSettings:
    """The settings of the request being handled (the defaults outside one)."""
    return _CURRENT.get() or JqlSettings()


@contextmanager
def jql_settings(settings: Settings) -> Iterator[None]:
    """Requests handled inside this block (and their worker threads) run scripts with these settings."""
    token = _CURRENT.set(JqlSettings.of(settings))
    try:
        yield
    finally:
        _CURRENT.reset(token)
