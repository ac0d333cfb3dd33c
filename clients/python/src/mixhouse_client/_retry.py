"""When to retry and how long to wait.

Retried: 429, 502 and 503 (configurable), and requests that got no answer (connection refused or dropped,
timeouts). A call that would act twice if sent twice (creating an annotation, a flag, a saved report, ...) is
not sent again once it may have reached the server without an answer (connection dropped, read timeout): it
raises `TransportError`; it is retried after an error status, or when the connection was never made. Never retried: every other status, 400/401/403 above all, whose request would fail again.
Retrying an ingestion call is safe because every event carries an `$insert_id` fixed before the first
attempt (see `_batching.py`), so a batch that landed but whose answer was lost is deduplicated.

The wait before retry n (n = 0, 1, ...) is "full jitter" (AWS Architecture Blog, "Exponential Backoff And
Jitter"): uniform(0, min(cap, base * 2**n)). A `Retry-After` header (seconds or an HTTP date) is a floor:
the wait is max(Retry-After, jitter); a Retry-After longer than `max_retry_after` is not waited out, the
error is raised at once. The retry budget is a token bucket shared by every call of one client: it starts
with `budget_minimum` tokens, each first attempt adds `budget_ratio` (up to the minimum again), each retry
takes one; with less than one token, the error is raised instead of retried, so a server in trouble sees at
most about `budget_ratio` extra requests per request rather than `max_attempts` times the traffic.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass, field

import httpx

# No answer came back: safe to send again (ingestion is idempotent through $insert_id; queries are reads).
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
)
# The request never reached the server: safe to send again even when sending it twice would do a thing twice.
UNSENT_EXCEPTIONS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries. `RetryPolicy(max_attempts=1)` turns retries off."""

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 120.0
    retry_statuses: frozenset[int] = frozenset({429, 502, 503})
    budget_minimum: float = 20.0
    budget_ratio: float = 0.2

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter for retry number `retry` (0 for the first retry)."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2.0**retry))
        return rng.uniform(0.0, ceiling)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RetryBudget:
    """The token bucket described in the module docstring; thread-safe."""

    minimum: float
    ratio: float
    tokens: float = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tokens = self.minimum

    def deposit(self) -> None:
        with self._lock:
            self.tokens = min(self.minimum, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        with self._lock:
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True
