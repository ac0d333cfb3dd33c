"""JQL's limits, each an environment setting (docs/jql.md lists them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_TIMEOUT_SECONDS = 120.0  # Mixpanel's documented 2-minute limit
DEFAULT_MAX_MEMORY_MB = 512
DEFAULT_WORKERS = 2
DEFAULT_QUEUE_SECONDS = 30.0
DEFAULT_MAX_OUTPUT_MB = 256
DEFAULT_BATCH_ROWS = 10_000


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = float(raw)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class JqlSettings:
    """timeout_seconds   MIXHOUSE_JQL_TIMEOUT_SECONDS: wall time of one script, reading included
    max_memory_mb      MIXHOUSE_JQL_MAX_MEMORY_MB: the JavaScript heap of one script
    workers            MIXHOUSE_JQL_WORKERS: scripts that run at once (each has its own V8 isolate)
    queue_seconds      MIXHOUSE_JQL_QUEUE_SECONDS: how long a script waits for a free worker before a 429
    max_output_mb      MIXHOUSE_JQL_MAX_OUTPUT_MB: the largest answer (JSON text)
    batch_rows         MIXHOUSE_JQL_BATCH_ROWS: events handed to JavaScript per batch
    resolve_identity   MIXHOUSE_JQL_RESOLVE_IDENTITY: 1 (default) distinct ids resolved by ID Merge as in
                       every report; 0 the ids as ingested
    """

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB
    workers: int = DEFAULT_WORKERS
    queue_seconds: float = DEFAULT_QUEUE_SECONDS
    max_output_mb: int = DEFAULT_MAX_OUTPUT_MB
    batch_rows: int = DEFAULT_BATCH_ROWS
    resolve_identity: bool = True

    @classmethod
    def from_env(cls) -> JqlSettings:
        return cls(
            timeout_seconds=_number("MIXHOUSE_JQL_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS),
            max_memory_mb=int(_number("MIXHOUSE_JQL_MAX_MEMORY_MB", DEFAULT_MAX_MEMORY_MB)),
            workers=int(_number("MIXHOUSE_JQL_WORKERS", DEFAULT_WORKERS)),
            queue_seconds=_number("MIXHOUSE_JQL_QUEUE_SECONDS", DEFAULT_QUEUE_SECONDS),
            max_output_mb=int(_number("MIXHOUSE_JQL_MAX_OUTPUT_MB", DEFAULT_MAX_OUTPUT_MB)),
            batch_rows=int(_number("MIXHOUSE_JQL_BATCH_ROWS", DEFAULT_BATCH_ROWS)),
            resolve_identity=os.environ.get("MIXHOUSE_JQL_RESOLVE_IDENTITY", "1").strip() not in ("0", "false", "no"),
        )
