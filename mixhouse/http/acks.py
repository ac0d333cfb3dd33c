"""Waiting on the event loop for the writer's acknowledgements, one wake-up of the loop per group commit.

`asyncio.wrap_future` costs a thread-safe call into the loop for every future the writer resolves (a
handle, a write to the loop's wake-up pipe, a read of it), and chains cancellation back: a cancelled
request would cancel the writer's future, which the writer then fails to resolve. Here the writer's
thread queues each finished future and wakes the loop only when the queue was empty, so a commit that
acknowledges thirty requests wakes the loop once; the writer's futures are never cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import Future


class Acknowledgements:
    """Futures of other threads, awaited on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._done: list[tuple[asyncio.Future[None], Future[None]]] = []

    def wait(self, future: Future[None]) -> asyncio.Future[None]:
        """An awaitable that ends as `future` does (its result or its exception)."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        future.add_done_callback(lambda done: self._arrived(waiter, done))
        return waiter

    def _arrived(self, waiter: asyncio.Future[None], done: Future[None]) -> None:
        """On the thread that resolved `done` (or the loop's, when it was resolved already)."""
        with self._lock:
            wake = not self._done
            self._done.append((waiter, done))
        if wake:
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for waiter, future in done:
            if waiter.done():  # the request was cancelled meanwhile
                continue
            error = future.exception()
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Acknowledgements] = weakref.WeakKeyDictionary()


def acknowledged(future: Future[None]) -> asyncio.Future[None]:
    """Await the writer's `future` on the running loop."""
    loop = asyncio.get_running_loop()
    acks = _per_loop.get(loop)
    if acks is None:
        acks = _per_loop[loop] = Acknowledgements(loop)
    return acks.wait(future)


__all__ = ["Acknowledgements", "acknowledged"]
