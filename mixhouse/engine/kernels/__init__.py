"""Compiled per-user scans (numba) over columns an engine hands over as numpy arrays.

The engine filters, resolves identities and evaluates expressions; a kernel only groups rows by user,
orders each user's rows by time, and walks them. Kept free of any engine so that another engine can
feed the same arrays.

Kernels are compiled on first use and cached next to their source (`__pycache__`): `warm()` does it
ahead of the first query. `python -m mixhouse.engine.kernels` compiles them at install (`make serve`
and `make test` run it after pip), so that a server only loads the cache (~0.3 s); a server started
without that compiles them in the background at start (~10 s), says so in its log and on /readyz,
and a query that needs them waits for them within its deadline (`wait_until_ready`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mixhouse.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Kernels are compiled with nogil and run on these threads, a range of partitions each: plain threads
# rather than numba's parallel loops, whose loop rewriting changed what a walk computed (a per-user
# scan gave other answers under prange than in a plain loop) and whose fallback threading layer must
# not run two loops at once.
_POOL = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="kernel")


def in_parallel(work: Callable[[T], None], items: Iterable[T]) -> None:
    """`work(item)` for every item, on the kernel threads; returns when all are done."""
    for future in [_POOL.submit(work, item) for item in items]:
        future.result()


_ready = threading.Event()
_warming = threading.Lock()


def ready() -> bool:
    return _ready.is_set()


def cached() -> bool:
    """Whether numba's cache holds compiled kernels: an index file per kernel, next to the source, or
    under NUMBA_CACHE_DIR (in a folder named after the source's path) when that is set."""
    user_dir = os.environ.get("NUMBA_CACHE_DIR")
    if user_dir:
        return any(Path(user_dir).glob("**/kernels/funnel.*.nbi"))
    return any((Path(__file__).parent / "__pycache__").glob("funnel.*.nbi"))


def warm_in_background() -> None:
    """Start `warm()` on a thread, with a log line before and after when it has to compile."""
    compiling = not cached()
    if compiling:
        log.warning("compiling the query kernels (once per install, ~10 s); funnels wait for them")

    def run() -> None:
        started = time.monotonic()
        warm()
        if compiling:
            log.warning("query kernels compiled in %.1f s", time.monotonic() - started)

    threading.Thread(target=run, name="warm-kernels", daemon=True).start()


def wait_until_ready(timeout: float | None) -> None:
    """Block until the kernels are loaded, at most `timeout` seconds (None: as long as it takes);
    then Unavailable (503, retryable) rather than a request that hangs without a word."""
    if _ready.is_set():
        return
    log.warning("a query waits for the query kernels to finish compiling")
    if not _ready.wait(timeout):
        raise Unavailable("the server is still compiling its query kernels (once per install); retry in a few seconds")


def warm() -> None:
    """Compile (or load from the cache) every kernel, on a few rows: each takes one type of input
    (`users.readonly`), so no query compiles after this."""
    with _warming:
        if not _ready.is_set():
            _compile()
            _ready.set()


def _compile() -> None:
    import numpy as np

    from mixhouse.engine.kernels.funnel import sum_attempts, walk_funnel
    from mixhouse.engine.kernels.users import partition_by_user

    n = 40
    key = np.arange(n, dtype=np.int64) % 7 * 7919
    t = np.arange(n, dtype=np.int64) * 1000
    info = np.full(n, 3 | (1 << 32), np.int64)
    lanes = np.full(n, -1, np.int64)
    aliases = (key[:2].copy(), key[2:4].copy())
    for columns in ([key, t, t, info], [key, t, t, info, lanes]):
        for totals in (False, True):
            att = walk_funnel(partition_by_user([columns], aliases if totals else None), 2, 10_000, 2_000, totals)
            sum_attempts(att, np.zeros(len(att.bucket), np.int64), 1, 2)
