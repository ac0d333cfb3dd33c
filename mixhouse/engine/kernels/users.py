"""Rows grouped by user and ordered by (time, seq) within each user, without a global sort.

Users are identified by a 64-bit key. Rows are first scattered into partitions on the key's top bits,
each small enough for its hash table and rows to stay in cache; a kernel then groups each partition
(`group_partition`) right before it walks it, so that a user's rows are contiguous and time-ordered
while still in cache. Partitions are independent, and kernels walk them in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import numpy.typing as npt

from mixhouse.engine.kernels import in_parallel, memory

ROWS_PER_PARTITION = 8192

I64 = npt.NDArray[np.int64]

# Input columns: the user key, then the row's columns (time, seq, payload...).
KEY, KEYS = 0, 1
# Columns of `Partitioned.rows` and of a grouped partition: the key is gone (users are told apart by
# their row ranges).
TIME, SEQ, PAYLOAD = 0, 1, 2


@dataclass(frozen=True)
class Partitioned:
    """`rows[x]` holds the input columns after the key of the row at position x, `keys[x]` its user key;
    partition p holds positions `part_start[p]:part_start[p + 1]`, and all of a user's rows are in one.
    A kernel calls `group_partition` on each partition and walks the grouped copy it leaves in the
    worker's buffers."""

    keys: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    part_start: I64

    def release(self) -> None:
        """Gives the arrays back for the next query (see memory.py); they must not be used after."""
        memory.give(self.keys, self.rows)


def partition_by_user(chunks: list[list[I64]], aliases: tuple[I64, I64] | None = None) -> Partitioned:
    """`chunks`: pieces of the input (as an engine hands them over), each a list of int64 columns of
    one length: user key, time, seq, then any payload columns. `aliases`: (key, canonical key) pairs of
    merged identities; a row whose key is an alias counts for its canonical user."""
    n = sum(len(chunk[0]) for chunk in chunks)
    width = len(chunks[0]) - KEYS if chunks else PAYLOAD
    bits = 0
    while (ROWS_PER_PARTITION << bits) < n and bits < 16:
        bits += 1
    if aliases is not None and len(aliases[0]):
        table = _alias_table(*(readonly(a) for a in aliases))
        resolved = [memory.take(len(chunk[KEY])) for chunk in chunks]
        in_parallel(lambda i: _resolve(readonly(chunks[i][KEY]), *table, resolved[i]), range(len(chunks)))
        chunks = [[resolved[i], *chunk[KEYS:]] for i, chunk in enumerate(chunks)]
    pieces = [tuple(readonly(c) for c in chunk) for chunk in chunks]
    # Chunks in order of their first time: an engine scanning time-ordered storage hands over time-ordered
    # chunks in any order, and rows that reach a partition in time order need no sorting there.
    pieces.sort(key=lambda piece: int(piece[TIME + KEYS][0]) if len(piece[KEY]) else 0)
    # Each chunk's share of each partition, so that chunks scatter independently (and in parallel).
    counts = np.zeros((len(pieces) + 1, (1 << bits) + 1), np.int64)
    for i, piece in enumerate(pieces):
        _count(piece[KEY], bits, counts[i + 1])
    part_start, chunk_pos = _offsets(counts)
    keys = memory.take(n)
    rows = memory.take(n, width)
    # Chunks fill disjoint positions, and the scatter releases the GIL: two threads halve it.
    in_parallel(lambda i: _scatter(pieces[i], bits, chunk_pos[i], keys, rows), range(len(pieces)))
    if aliases is not None and len(aliases[0]):
        memory.give(*resolved)
    return Partitioned(keys, rows, part_start)


@nb.njit(cache=True, nogil=True)
def _alias_table(alias: I64, canonical: I64) -> tuple[I64, I64, I64]:
    """An open-addressing map alias -> canonical (slots with 0 in `used` are free)."""
    cap = 4
    while cap < 2 * alias.shape[0]:
        cap <<= 1
    keys, values, used = np.empty(cap, np.int64), np.empty(cap, np.int64), np.zeros(cap, np.int64)
    for i in range(alias.shape[0]):
        s = (alias[i] ^ (alias[i] >> 29)) & (cap - 1)
        while used[s] and keys[s] != alias[i]:
            s = (s + 1) & (cap - 1)
        keys[s], values[s], used[s] = alias[i], canonical[i], 1
    return keys, values, used


@nb.njit(cache=True, nogil=True)
def _resolve(key: I64, keys: I64, values: I64, used: I64, out: I64) -> None:
    mask = keys.shape[0] - 1
    for i in range(key.shape[0]):
        k = key[i]
        s = (k ^ (k >> 29)) & mask
        out[i] = k
        while used[s]:
            if keys[s] == k:
                out[i] = values[s]
                break
            s = (s + 1) & mask


def readonly(column: I64) -> I64:
    """A read-only view. Every array a caller hands over is passed on as one, whether it came from Arrow
    (read-only) or numpy (writable): numba indexes a tuple of arrays only when all have one type, and a
    kernel given a type that `warm()` did not compile would compile it during a query, writing to the
    cache that other processes read (see `kernels.warm`)."""
    view = np.ascontiguousarray(column, dtype=np.int64).view()
    view.flags.writeable = False
    return view


@nb.njit(cache=True, nogil=True)
def _partition(key: np.int64, shift: np.uint64) -> np.int64:
    return np.int64((np.uint64(key) >> shift) >> np.uint64(1))  # two shifts: by 64 (no bits) is undefined


@nb.njit(cache=True, nogil=True)
def _count(key: I64, bits: int, counts: I64) -> None:
    shift = np.uint64(64 - bits - 1)
    for i in range(key.shape[0]):
        counts[_partition(key[i], shift) + 1] += 1


@nb.njit(cache=True, nogil=True)
def _offsets(counts: npt.NDArray[np.int64]) -> tuple[I64, npt.NDArray[np.int64]]:
    """Partition starts, and where each chunk's rows of each partition begin."""
    chunks = counts.shape[0] - 1
    parts = counts.shape[1] - 1
    part_start = np.zeros(parts + 1, np.int64)
    chunk_pos = np.empty((chunks, parts), np.int64)
    at = 0
    for p in range(parts):
        part_start[p] = at
        for c in range(chunks):
            chunk_pos[c, p] = at
            at += counts[c + 1, p + 1]
    part_start[parts] = at
    return part_start, chunk_pos


@nb.njit(cache=True, nogil=True)
def _scatter(cols: tuple[I64, ...], bits: int, pos: I64, keys: I64, rows: npt.NDArray[np.int64]) -> None:
    shift = np.uint64(64 - bits - 1)
    key = cols[KEY]
    for i in range(key.shape[0]):
        p = _partition(key[i], shift)
        d = pos[p]
        pos[p] = d + 1
        keys[d] = key[i]
        for c in range(KEYS, len(cols)):
            rows[d, c - KEYS] = cols[c][i]


@nb.njit(cache=True, nogil=True)
def _before(rows: npt.NDArray[np.int64], a: int, b: int) -> bool:
    return bool(rows[a, TIME] < rows[b, TIME] or (rows[a, TIME] == rows[b, TIME] and rows[a, SEQ] < rows[b, SEQ]))


@nb.njit(cache=True, nogil=True)
def scratch(part_start: I64, width: int) -> tuple[I64, I64, I64, I64, I64, npt.NDArray[np.int64]]:
    """Buffers for `group_partition`, big enough for the largest partition: one set per worker, reused
    from partition to partition (allocating them per partition costs more than the grouping)."""
    largest = 1
    for p in range(part_start.shape[0] - 1):
        largest = max(largest, part_start[p + 1] - part_start[p])
    cap = 4
    while cap < 2 * largest:
        cap <<= 1
    return (
        np.empty(cap, np.int64),  # slot -> local user id, -1 when free
        np.empty(cap, np.int64),  # slot -> key
        np.empty(largest, np.int64),  # row -> local user id
        np.empty(largest + 1, np.int64),  # user -> first row
        np.empty(largest, np.int64),  # grouped position -> row
        np.empty((largest, width), np.int64),  # the grouped rows
    )


@nb.njit(cache=True, nogil=True)
def group_partition(
    keys: I64,
    out: npt.NDArray[np.int64],
    a: int,
    b: int,
    buffers: tuple[I64, I64, I64, I64, I64, npt.NDArray[np.int64]],
) -> int:
    """Copies the rows [a, b) of one partition into the buffers' `buf`, user by user, each user's rows
    by (time, seq); user j's rows are then `buf[first[j]:first[j + 1]]`. Returns the number of users.
    A kernel walks `buf` right away, while it is in cache."""
    slot_user, slot_key, local, first, perm, buf = buffers
    m = b - a
    if m == 0:
        return 0
    rows = out[a:b]
    cap = 4
    while cap < 2 * m:
        cap <<= 1
    mask = cap - 1
    slot_user[:cap] = -1
    users = 0
    for x in range(m):
        k = keys[a + x]
        s = (k ^ (k >> 29)) & mask  # the key's low bits are uniform (the top ones chose the partition)
        while True:
            if slot_user[s] == -1:
                slot_user[s] = users
                slot_key[s] = k
                local[x] = users
                users += 1
                break
            if slot_key[s] == k:
                local[x] = slot_user[s]
                break
            s = (s + 1) & mask
    # Counting sort on the local user id (stable: input order kept) into buf, then each user's rows by
    # time in place (they arrive nearly in time order: mostly a check), then back.
    first[: users + 1] = 0
    for x in range(m):
        first[local[x] + 1] += 1
    for j in range(users):
        first[j + 1] += first[j]
    width = rows.shape[1]
    for x in range(m):
        u = local[x]
        d = first[u]
        first[u] = d + 1
        for c in range(width):
            buf[d, c] = rows[x, c]
    # first[u] is now where user u ends; shift back to where each starts.
    for j in range(users, 0, -1):
        first[j] = first[j - 1]
    first[0] = 0
    for j in range(users):
        lo, hi = first[j], first[j + 1]
        for x in range(lo + 1, hi):
            if _before(buf, x, x - 1):
                if hi - lo > 32:
                    _merge_sort_rows(buf, lo, hi, perm, width)
                else:
                    _insertion_sort_rows(buf, lo, hi, width)
                break
    return users


@nb.njit(cache=True, nogil=True)
def _insertion_sort_rows(buf: npt.NDArray[np.int64], lo: int, hi: int, width: int) -> None:
    for x in range(lo + 1, hi):
        y = x
        while y > lo and _before(buf, y, y - 1):
            for c in range(width):
                buf[y, c], buf[y - 1, c] = buf[y - 1, c], buf[y, c]
            y -= 1


@nb.njit(cache=True, nogil=True)
def _merge_sort_rows(buf: npt.NDArray[np.int64], lo: int, hi: int, perm: I64, width: int) -> None:
    """A heavy user's rows: sort positions (perm as scratch) without the quadratic case, then move."""
    for x in range(lo, hi):
        perm[x] = x
    _merge_sort(perm, lo, hi, buf)
    moved = buf[lo:hi].copy()
    for x in range(lo, hi):
        for c in range(width):
            buf[x, c] = moved[perm[x] - lo, c]


@nb.njit(cache=True, nogil=True)
def _merge_sort(perm: I64, a: int, b: int, rows: npt.NDArray[np.int64]) -> None:
    """Bottom-up merge sort of perm[a:b] by (time, seq): a heavy user's rows, without the quadratic case."""
    n = b - a
    src = perm[a:b].copy()
    dst = np.empty(n, np.int64)
    width = 1
    while width < n:
        for left in range(0, n, 2 * width):
            mid = min(left + width, n)
            right = min(left + 2 * width, n)
            i, j, k = left, mid, left
            while i < mid and j < right:
                if _before(rows, src[j], src[i]):
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < right:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        width *= 2
    perm[a:b] = src
