"""The transport seam and the one place requests are sent.

`Client(transport=...)` takes any `httpx.BaseTransport`: the default (real sockets, to Mixpanel or a mixhouse
server), or `AppTransport(app)`, which runs an ASGI application (e.g. `mixhouse.http.app.create_app(dir)`) in
this process on an event loop of its own thread, lifespan included, so the synchronous client can call it
without a socket. httpx's own `ASGITransport` serves only its async client, and runs no lifespan:
`AsyncAppTransport(app)` adds it, for `AsyncClient`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import httpx

from mixhouse_client._exceptions import ConfigurationError, TransportError, api_error
from mixhouse_client._retry import (
    RETRYABLE_EXCEPTIONS,
    UNSENT_EXCEPTIONS,
    RetryBudget,
    RetryPolicy,
    retry_after_seconds,
)

log = logging.getLogger("mixhouse_client")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AppTransport(httpx.BaseTransport):
    """Serve requests from an ASGI app in-process. Close it (or the client) to run the app's shutdown."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._asgi = httpx.ASGITransport(app=app)
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] = (
            anyio.from_thread.start_blocking_portal()
        )
        self._portal = self._portal_cm.__enter__()
        self._stop, self._stopped, ready = self._portal.call(self._events)
        outcome: list[str | None] = []
        self._portal.start_task_soon(self._lifespan, ready, outcome)
        self._portal.call(ready.wait)
        if outcome and outcome[0] is not None:
            self.close()
            raise RuntimeError(f"ASGI app failed to start: {outcome[0]}")

    @staticmethod
    async def _events() -> tuple[anyio.Event, anyio.Event, anyio.Event]:
        return anyio.Event(), anyio.Event(), anyio.Event()

    async def _lifespan(self, ready: anyio.Event, outcome: list[str | None]) -> None:
        await run_lifespan(self._app, self._stop, self._stopped, ready, outcome)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            async_request = httpx.Request(
                request.method, request.url, headers=request.headers, content=body, extensions=request.extensions
            )
            response = await self._asgi.handle_async_request(async_request)
            content = b"".join([piece async for piece in response.aiter_raw()])  # still encoded
            return response.status_code, response.headers.raw, content

        status, headers, content = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        portal_cm = getattr(self, "_portal_cm", None)
        if portal_cm is None:
            return
        self._portal_cm = None  # type: ignore[assignment]

        async def shutdown() -> None:
            self._stop.set()
            with anyio.move_on_after(30):
                await self._stopped.wait()

        try:
            self._portal.call(shutdown)
        finally:
            portal_cm.__exit__(None, None, None)


class _Retrying:
    """The retry policy and budget of one client, and what to do after each attempt: shared by `Sender`
    and `AsyncSender`, which differ only in how they send and sleep."""

    def __init__(self, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.budget = RetryBudget(policy.budget_minimum, policy.budget_ratio)
        self.rng = rng or random.Random()

    def after_exception(self, exc: Exception, request: httpx.Request, retry: int, once: bool = False) -> float:
        """The wait before the next attempt after no answer came; raises `TransportError` to give up. A `once`
        request (not idempotent) is sent again only if it never reached the server."""
        attempt = retry + 1
        if once and isinstance(exc, RETRYABLE_EXCEPTIONS) and not isinstance(exc, UNSENT_EXCEPTIONS):
            message = f"{type(exc).__name__}: {exc or 'no response'} (not sent again: it may have been done)"
        elif isinstance(exc, RETRYABLE_EXCEPTIONS):
            delay = self._may_retry(retry, None)
            if delay is not None:
                log.info("retry %d in %.2fs after %s on %s", attempt, delay, type(exc).__name__, request.url.path)
                return delay
            message = f"{type(exc).__name__}: {exc or 'no response'}"
        else:
            message = str(exc)
        raise TransportError(f"{request.method} {_safe_url(request.url)}: {message}", attempts=attempt) from exc

    def after_error_status(self, response: httpx.Response, request: httpx.Request, retry: int) -> float:
        """The wait before the next attempt after an error status (its body read); raises the `APIError`
        to give up."""
        delay = None
        if response.status_code in self.policy.retry_statuses:
            delay = self._may_retry(retry, retry_after_seconds(response.headers.get("Retry-After")))
        if delay is None:
            raise api_error(
                response.status_code,
                _body(response),
                method=request.method,
                url=_safe_url(request.url),
                attempts=retry + 1,
            )
        log.info("retry %d in %.2fs after %d on %s", retry + 1, delay, response.status_code, request.url.path)
        return delay

    def after_cut_stream(self, exc: Exception, restarts: int) -> float:
        """The wait before requesting a stream again that was cut mid-way (`restarts` so far, from 1)."""
        if restarts >= self.policy.max_attempts:
            raise TransportError(f"export stream cut {restarts} times: {exc}", attempts=restarts) from exc
        return self.policy.backoff(restarts - 1, self.rng)

    def _may_retry(self, retry: int, retry_after: float | None) -> float | None:
        """The wait before the next attempt, or None to give up."""
        if retry + 1 >= self.policy.max_attempts:
            return None
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            return None
        if not self.budget.withdraw():
            return None
        delay = self.policy.backoff(retry, self.rng)
        return delay if retry_after is None else max(retry_after, delay)


async def run_lifespan(
    app: ASGIApp, stop: anyio.Event, stopped: anyio.Event, ready: anyio.Event, outcome: list[str | None]
) -> None:
    """Run an ASGI app's lifespan: `ready` is set once it started (`outcome` holds None, or why it failed),
    `stop` asks it to shut down, `stopped` is set when it has."""
    phase = ["startup"]

    async def receive() -> Message:
        if phase[0] == "startup":
            phase[0] = "running"
            return {"type": "lifespan.startup"}
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            outcome.append(None)
            ready.set()
        elif kind == "lifespan.startup.failed":
            outcome.append(str(message.get("message", "startup failed")))
            ready.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            stopped.set()

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    try:
        await app(scope, receive, send)
    except Exception as exc:  # an app without lifespan support: serve anyway
        log.debug("ASGI app has no lifespan: %s", exc)
    finally:
        if not ready.is_set():
            outcome.append(None)
            ready.set()
        stopped.set()


class AsyncAppTransport(httpx.AsyncBaseTransport):
    """`AppTransport` for `AsyncClient`: the ASGI app runs in the client's own event loop, its lifespan from
    the moment the client is entered (`async with AsyncClient(transport=AsyncAppTransport(app))`) until it is
    closed. httpx's `ASGITransport` alone does not run the lifespan, which mixhouse's app needs."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._asgi = httpx.ASGITransport(app=app)
        self._group: anyio.abc.TaskGroup | None = None
        self._stop = self._stopped = anyio.Event()

    async def __aenter__(self) -> AsyncAppTransport:
        if self._group is not None:
            return self
        self._stop, self._stopped, ready = anyio.Event(), anyio.Event(), anyio.Event()
        outcome: list[str | None] = []
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(run_lifespan, self._app, self._stop, self._stopped, ready, outcome)
        await ready.wait()
        if outcome and outcome[0] is not None:
            await self.aclose()
            raise RuntimeError(f"ASGI app failed to start: {outcome[0]}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._group is None:
            raise ConfigurationError("the app is not running: use `async with AsyncClient(transport=...)`")
        return await self._asgi.handle_async_request(request)

    async def aclose(self) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        self._stop.set()
        with anyio.move_on_after(30):
            await self._stopped.wait()
        await group.__aexit__(None, None, None)


class Sender(_Retrying):
    """Sends a request with the client's retry policy and budget; raises the client's errors."""

    def __init__(self, http: httpx.Client, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        super().__init__(policy, rng=rng)
        self.http = http

    def send(self, build: Callable[[], httpx.Request], *, stream: bool = False, once: bool = False) -> httpx.Response:
        """A successful (2xx/3xx) response; with `stream`, its body is not read yet (the caller closes it).
        `once`: the request is not idempotent (see `_Retrying.after_exception`)."""
        self.budget.deposit()
        retry = 0
        while True:
            request = build()
            try:
                response = self.http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                delay = self.after_exception(exc, request, retry, once)
            else:
                if response.status_code < 400:
                    return response
                try:
                    response.read()
                    delay = self.after_error_status(response, request, retry)
                finally:
                    response.close()
            time.sleep(delay)
            retry += 1


class AsyncSender(_Retrying):
    """`Sender` for httpx.AsyncClient: the same policy and errors, waiting with `anyio.sleep`."""

    def __init__(self, http: httpx.AsyncClient, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        super().__init__(policy, rng=rng)
        self.http = http

    async def send(
        self, build: Callable[[], httpx.Request], *, stream: bool = False, once: bool = False
    ) -> httpx.Response:
        self.budget.deposit()
        retry = 0
        while True:
            request = build()
            try:
                response = await self.http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                delay = self.after_exception(exc, request, retry, once)
            else:
                if response.status_code < 400:
                    return response
                try:
                    await response.aread()
                    delay = self.after_error_status(response, request, retry)
                finally:
                    await response.aclose()
            await anyio.sleep(delay)
            retry += 1


class Lines:
    """Splits a streamed body into lines (without the newline, empty lines dropped). After `restart()` (the
    stream was cut and requested again) the lines already given are skipped: a closed day's export is a
    stable, time-ordered list."""

    def __init__(self) -> None:
        self.skip = 0
        self.given = 0
        self._rest = b""

    def restart(self) -> None:
        self.skip = self.given
        self._rest = b""

    def feed(self, piece: bytes) -> list[bytes]:
        self._rest += piece
        lines = self._rest.split(b"\n")
        self._rest = lines.pop()
        return self._keep(lines)

    def end(self) -> list[bytes]:
        rest, self._rest = self._rest, b""
        return self._keep([rest] if rest.strip() else [])

    def _keep(self, lines: list[bytes]) -> list[bytes]:
        out = []
        for line in lines:
            if not line:
                continue
            if self.skip:
                self.skip -= 1
                continue
            out.append(line)
        self.given += len(out)
        return out


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _safe_url(url: httpx.URL) -> str:
    """The URL without credentials in it (userinfo, legacy `api_secret`/`api_key`)."""
    params = [(k, "***" if k in ("api_secret", "api_key", "sig") else v) for k, v in url.params.multi_items()]
    return str(url.copy_with(username=None, password=None, params=params))
