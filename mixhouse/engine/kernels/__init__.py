"""Compiled per-user scans (numba) over columns an engine hands over as numpy arrays.

The engine filters, resolves identities and evaluates expressions; a kernel only groups rows by user,
orders each user's rows by time, and walks them. Kept free of any engine so that another engine can
feed the same arrays.

Kernels are compiled on first use and cached next to their source (`__pycache__`): `warm()` does it
ahead of the first query (the server calls it in the background at start; `python -m
mixhouse.engine.kernels` does it before a test run, so that test servers only load the cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

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


def warm() -> None:
    """Compile (or load from the cache) every kernel, on a few rows."""
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
