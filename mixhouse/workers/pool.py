"""A pool of processes that turn large /import bodies into columns (mixhouse/domain/columns.py).

One server process runs its Python under one interpreter lock: the event loop's parsing and validation of
an /import batch (~6 us an event) and the writer's preparation of it took turns on one core while the other
sat half idle (docs/ingestion.md). A body of at least `min_bytes` is handed to one of `processes` worker
processes instead; the worker parses it, validates it as a whole and gives back Arrow arrays, which cross
the process boundary as buffers, so the server's own interpreter spends a few microseconds per batch, not
per event, on it.

A worker only answers a plain batch (`domain.columns.import_columns`); for anything else (an error to
report, an event to look at on its own, a Lexicon drop) it answers None and the request takes the
ordinary path in the server, which decides and reports exactly as without workers. A worker that dies
(killed, out of memory) fails no request: the pool is replaced and the request takes the ordinary path.

Workers are started on the first large /import (spawned: a fresh interpreter, never a fork of the
server's threads) and die with the server (PR_SET_PDEATHSIG), even when it is killed with -9.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import multiprocessing
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import replace

from mixhouse.domain.columns import EventColumns, import_columns
from mixhouse.domain.events import IngestContext
from mixhouse.domain.project import Project
from mixhouse.heap import YOUNG_COLLECTION_ALLOCATIONS

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _start_worker() -> None:
    """In each worker, first: die with the server, leave Ctrl-C to it, keep start-up objects out of the
    collector's scans and collect the young generation as seldom as the server does (mixhouse/heap.py)."""
    with suppress(AttributeError, OSError):  # not Linux: the pool's own shutdown still ends the workers
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, older, oldest)  # a batch's ~10k dicts live until it is done


class ImportWorkers:
    """`processes` worker processes for /import bodies of at least `min_bytes` (0 processes: none)."""

    def __init__(self, processes: int, min_bytes: int) -> None:
        self.processes = processes
        self.min_bytes = min_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def takes(self, size: int) -> bool:
        """Whether a body of `size` bytes goes to a worker."""
        return self.processes > 0 and size >= self.min_bytes and not self._closed

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
                )
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    async def columns(self, body: bytes, project: Project, ctx: IngestContext) -> EventColumns | None:
        """`body` (an /import body, decompressed) as columns, or None: take the ordinary path."""
        pool = self._executor()
        try:
            future = pool.submit(import_columns, body, project, replace(ctx, geo=None), locating=ctx.geo is not None)
            result = await asyncio.wrap_future(future)
        except BrokenProcessPool:
            log.warning("an /import worker process died; starting new ones (the batch is validated here)")
            self._replace(pool)
            result = None
        except RuntimeError:  # submitted while the server shuts down
            result = None
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
