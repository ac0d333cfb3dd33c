"""The server's heap, once it has started: frozen out of the garbage collector's full collections.

A served process holds ~150k objects the collector tracks (the web stack, DuckDB's and Arrow's bindings,
numba's compiled kernels) that live as long as it does. Ingestion allocates tens of thousands of dicts
a second that live for a request (a 2000-event /import batch: ~10k), long enough to reach the oldest
generation, so CPython 3.11 ran a full collection every few batches, each walking the whole heap
(~60 ms on the benchmark machine): about a third of the server's CPU under sustained /import
(py-spy, bench/bench_ingest.py). `gc.freeze()` moves what exists after start-up to a permanent
generation that collections skip (https://docs.python.org/3/library/gc.html#gc.freeze); the
collector keeps collecting everything made later.

Then the youngest generation is collected every YOUNG_COLLECTION_ALLOCATIONS container allocations rather
than CPython's 700: a 2000-event batch allocates ~10k dicts that all live until its reply, so at 700 the
collector ran ~15 times a batch, each time walking the batches still in flight, and promoted them to
older generations whose collections walk them again. Side by side (bench/bench_ingest.py's /import, same
machine, one run): 42.4k against 46.1k events/s, 24.2 against 22.3 us of server CPU an event. Memory held
by cycles waits for at most that many allocations longer; request objects are freed by reference counting
without the collector.

The cost: a reference cycle among start-up objects that later becomes garbage is never freed. Start-up
objects live for the whole process (settings, routes, connections, compiled code), so that is bounded.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# The youngest generation's threshold once the heap is frozen (CPython's default is 700); the older
# generations keep CPython's ratios (10, 10).
YOUNG_COLLECTION_ALLOCATIONS = 50_000
_frozen = threading.Event()  # once per process (an app started again in the same process, as tests do)


def freeze_after(warm_up: Callable[[], None]) -> threading.Thread:
    """On a thread: wait for `warm_up` (what start-up still loads in the background, e.g. the query
    kernels), collect once, then freeze every object that survived. Once per process."""

    def run() -> None:
        if _frozen.is_set():
            return
        _frozen.set()
        try:
            warm_up()
        except Exception:  # the warm-up reports its own failure where it is used; freeze what there is
            log.exception("warming up before freezing the heap failed")
        gc.collect()
        gc.freeze()
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, older, oldest)
        log.info("froze %d start-up objects out of the garbage collector's scans", gc.get_freeze_count())

    thread = threading.Thread(target=run, name="freeze-heap", daemon=True)
    thread.start()
    return thread


def switch_interval(seconds: float) -> None:
    """How long a thread that wants the interpreter lock waits before it asks the thread holding it to let
    go (CPython's default 5 ms, https://docs.python.org/3/library/sys.html#sys.setswitchinterval): the
    `switch_interval_seconds` setting, applied once at start (the interpreter has one, for every thread)."""
    sys.setswitchinterval(seconds)
