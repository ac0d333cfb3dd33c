"""Big int64 arrays lent out and kept between queries.

A fresh large array costs a page fault (and the kernel zeroing a page) for every 4 KiB the first time it
is touched: on a 2.6M-row funnel about 20 ms of ~170. Kernels take their big arrays from here and give
them back when the query is done, so that the next query finds its pages already mapped. At most
`LIMIT_BYTES` are kept (the kernel_cache_bytes setting, MIXHOUSE_KERNEL_CACHE_BYTES, default 1 GiB; 0
keeps none; the engine sets it when it opens); the rest goes back to the allocator.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import numpy.typing as npt

DEFAULT_LIMIT_BYTES = 1 << 30
LIMIT_BYTES = DEFAULT_LIMIT_BYTES

_lock = threading.Lock()
_free: list[npt.NDArray[np.int64]] = []


def set_limit(limit_bytes: int) -> None:
    """How much to keep from now on (what is kept beyond it goes at the next `give`)."""
    global LIMIT_BYTES
    LIMIT_BYTES = limit_bytes


def take(*shape: int) -> npt.NDArray[np.int64]:
    """An uninitialised int64 array of `shape`: a view of a kept buffer when one is big enough."""
    size = math.prod(shape)
    with _lock:
        fits = [i for i, b in enumerate(_free) if b.size >= size]
        if fits:
            buffer = _free.pop(min(fits, key=lambda i: _free[i].size))  # by index: == on arrays compares values
            return buffer[:size].reshape(shape)
    return np.empty(shape, np.int64)


def give(*arrays: npt.NDArray[np.int64]) -> None:
    """Gives arrays from `take` back (their views must not be used after this)."""
    with _lock:
        for array in arrays:
            owner = array.base if isinstance(array.base, np.ndarray) else array
            if owner.dtype != np.int64 or any(owner is b for b in _free):
                continue
            _free.append(owner.reshape(-1))
        _free.sort(key=lambda b: -b.size)
        while sum(b.nbytes for b in _free) > LIMIT_BYTES:
            _free.pop()  # the smallest go first: the big ones save the most faults
