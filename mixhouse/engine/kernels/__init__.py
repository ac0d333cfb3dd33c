"""Compiled per-user scans (numba) over columns an engine hands over as numpy arrays.

The engine filters, resolves identities and evaluates expressions; a kernel only groups rows by user,
orders each user's rows by time, and walks them. Kept free of any engine so that another engine can
feed the same arrays.

Kernels are compiled on first use and cached next to their source (`__pycache__`): `warm()` does it
ahead of the first query (the server calls it in the background at start; `python -m
mixhouse.engine.kernels` does it before a test run, so that test servers only load the cache).
"""

from __future__ import annotations

import threading

# numba's fallback threading layer (workqueue) must not run two parallel kernels at once; the
# kernels take well under a second, so queries simply take turns.
PARALLEL_LOCK = threading.Lock()


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
    for columns in ([key, t, t, info], [key, t, t, info, lanes]):
        for totals in (False, True):
            att = walk_funnel(partition_by_user([columns]), 2, 10_000, 2_000, totals)
            sum_attempts(att, np.zeros(len(att.bucket), np.int64), 1, 2)
