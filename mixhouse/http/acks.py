"""Waiting on the event loop for the writer's acknowledgements, one wake-up of the loop per group commit.

`asyncio.wrap_future` costs a thread-safe call into the loop for every future the writer resolves (a
handle, a write to the loop's wake-up pipe, a read of it), and chains cancellation back: a cancelled
request would cancel the writer's future, which the writer then fails to resolve. Here the writer's
thread queues each finished future and wakes the loop only when the queue was empty, so a commit that
acknowledges thirty requests wakes the loop once; the writer's futures are never cancelled.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future


class Acknowledgements:
    """Futures of other threads, awaited on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._done: list[tuple[asyncio.Future[None], Future[None]]] = []

    def wait(self, future: Future[None]) -> asyncio.Future[None]:
        """An awaitable that ends as `future` does (its result or its exception)."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        future.add_done_callback(lambda done: self._arrived(waiter, done))
        return waiter

    def _arrived(self, waiter: asyncio.Future[None], done: Future[None]) -> None:
        """On the thread that resolved `done` (or the loop's, when it was resolved already)."""
        with self._lock:
            wake = not self._done
            self._done.append((waiter, done))
        if wake:
            self.loop.call_soon_threadsafe(self._resolve)

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


class _Here(threading.local):
    """This thread's acknowledgements: those of the loop it last ran (a thread runs one loop at a time)."""

    acks: Acknowledgements | None = None


_here = _Here()
# A forked child's thread keeps its parent's thread-locals, and with them a loop that still says it runs.
os.register_at_fork(after_in_child=lambda: setattr(_here, "acks", None))


def acknowledged(future: Future[None]) -> asyncio.Future[None]:
    """Await the writer's `future` on the running loop.

    The loop is the one this thread last used, while it still runs: a thread runs at most one loop at a
    time, so a running loop seen from this thread is the one running here. `asyncio.get_running_loop()`
    makes a getpid(2) system call each time in CPython 3.11 (to tell a forked child), about 5% of the event
    loop's time per /track request; it is asked only when this thread's loop changes."""
    acks = _here.acks
    if acks is None or not acks.loop.is_running():
        acks = _here.acks = Acknowledgements(asyncio.get_running_loop())
    return acks.wait(future)


__all__ = ["Acknowledgements", "acknowledged"]
