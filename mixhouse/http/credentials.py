"""Service-account secrets checked off the event loop, and clients that keep failing slowed down.

A secret is verified with argon2id (tens of ms of CPU; mixhouse/accounts/hashing.py). Done inline, every request with a wrong
secret stalls the event loop, so a flood of them slows every other request (`/healthz` included). This
middleware, outside the rate limiter and the handlers, verifies Basic `username:secret` credentials in
a worker thread first; the catalog then answers the later checks of the same request from its caches.

A client (by address) with more than `auth_failures_per_minute` (MIXHOUSE_AUTH_FAILURES_PER_MINUTE) refused credentials in the
last minute gets 429 with `Retry-After` for any credentials not already known good, without a key
derivation, until its failures leave the window. Credentials that worked before are never throttled.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from mixhouse.domain.auth import parse_basic
from mixhouse.domain.catalog import CatalogPort
from mixhouse.errors import RateLimited
from mixhouse.http.incoming import header
from mixhouse.http.responses import error_response
from mixhouse.http.routes import family_of

DEFAULT_AUTH_FAILURES_PER_MINUTE = 30
_WINDOW_SECONDS = 60.0
_MAX_CLIENTS = 100_000


class FailedLogins:
    """Refused credentials per client in a rolling minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] > _WINDOW_SECONDS:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int | None:
        """Seconds until this client may try again, or None if it may now."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self.per_minute:
                return None
            return max(1, math.ceil(_WINDOW_SECONDS - (now - times[0])))

    def record(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) >= _MAX_CLIENTS and client not in self._failures:
                self._failures.clear()  # a flood of addresses: forget rather than grow without bound
            self._recent(client, now).append(now)


class CredentialCheck:
    def __init__(self, app: ASGIApp, per_minute: int = DEFAULT_AUTH_FAILURES_PER_MINUTE) -> None:
        self.app = app
        self.failures = FailedLogins(per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentials = parse_basic(header(scope, b"authorization"))  # (no Headers built: most requests have none)
        if credentials is None or not credentials.user or not credentials.password:
            await self.app(scope, receive, send)  # no service account: no key derivation to protect
            return
        catalog: CatalogPort = scope["app"].state.catalog
        if not catalog.known_good(credentials.user, credentials.password):
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.failures.retry_after(client)
            if wait is not None:
                error = RateLimited(
                    "Too many failed authentication attempts from this address; retry later", retry_after=wait
                )
                response = error_response(family_of(scope["path"]), Request(scope), error)
                await response(scope, receive, send)
                return
            account = await run_in_threadpool(catalog.verify_service_account, credentials.user, credentials.password)
            if account is None:
                self.failures.record(client)
        await self.app(scope, receive, send)
