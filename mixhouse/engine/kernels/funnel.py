"""The funnel walk over rows grouped by user (see users.py), with Mixpanel's counting rules.

Payload of each row: INFO = the step mask (bit k set when the row's event matches step k+1) in the low
32 bits, and above them the entry bucket + 1 (0 when the row cannot start an attempt; a bucket when it
is a step-1 event inside the range). With a breakdown, LANE: -1 for an event's own row, or a segment
code for the extra rows that let a step-1 event start an attempt in that segment (such rows have an
empty mask, so they never match a later step).

Per lane (-1 is `$overall`) a user's attempts start at: (uniques) the first entry row of each bucket;
(totals) the first entry row, then the first entry row strictly after the previous attempt's exit (its
last step, or the end of its window). Step k+1 of an attempt is the earliest row, in (time, seq) order,
that matches it, is not earlier than `grace` before step k, not later than the entry + `window`, and is
not an event already used by an earlier step (told apart by seq: a lane row and its event's own row
are one event).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import numpy.typing as npt

from mixhouse.engine.kernels import in_parallel, memory
from mixhouse.engine.kernels.users import PAYLOAD, SEQ, TIME, Partitioned, group_partition, readonly, scratch

INFO, LANE = PAYLOAD, PAYLOAD + 1
ENTRY_SHIFT = 32
STEP_BITS = (1 << ENTRY_SHIFT) - 1

I64 = npt.NDArray[np.int64]
Rules = tuple[int, int, int, bool, bool]  # steps, window ms, grace ms, totals, lanes
Out = tuple[I64, I64, I64, npt.NDArray[np.int64]]  # per attempt slot: bucket, lane, steps reached, times


@dataclass(frozen=True)
class Attempts:
    """One row per attempt: its bucket, lane, how many steps it reached, and each step's time."""

    bucket: I64
    lane: I64
    reached: I64
    times: npt.NDArray[np.int64]  # (attempts, steps); steps not reached hold garbage


RANGES = 4  # ranges of partitions handed to the kernel threads (several per thread, for balance)


def walk_funnel(data: Partitioned, steps: int, window_ms: int, grace_ms: int, totals: bool) -> Attempts:
    lanes = data.rows.shape[1] > LANE
    n, parts = len(data.rows), len(data.part_start) - 1
    # At most one attempt per row: partition p writes its attempts from slot part_start[p] on. The
    # arrays are left uninitialised, so only the pages of written slots are ever touched.
    out = (memory.take(n), memory.take(n), memory.take(n), memory.take(n, steps))
    rules = (steps, window_ms, grace_ms, totals, lanes)
    written = np.zeros(parts, np.int64)
    bounds = np.linspace(0, parts, min(parts, RANGES) + 1).astype(np.int64)
    in_parallel(
        lambda r: _walk(data.keys, data.rows, data.part_start, int(bounds[r]), int(bounds[r + 1]), rules, out, written),
        range(len(bounds) - 1),
    )
    attempts = Attempts(*_compact(data.part_start, written, *out))
    memory.give(*out)
    return attempts


@nb.njit(cache=True, nogil=True)
def _compact(
    part_start: I64, written: I64, bucket: I64, lane: I64, reached: I64, times: npt.NDArray[np.int64]
) -> tuple[I64, I64, I64, npt.NDArray[np.int64]]:
    """The attempts of every partition, moved together (each partition wrote from its first slot)."""
    total = written.sum()
    out_bucket, out_lane, out_reached = np.empty(total, np.int64), np.empty(total, np.int64), np.empty(total, np.int64)
    out_times = np.empty((total, times.shape[1]), np.int64)
    at = 0
    for p in range(written.shape[0]):
        for x in range(part_start[p], part_start[p] + written[p]):
            out_bucket[at], out_lane[at], out_reached[at] = bucket[x], lane[x], reached[x]
            out_times[at] = times[x]
            at += 1
    return out_bucket, out_lane, out_reached, out_times


def sum_attempts(att: Attempts, group: I64, groups: int, steps: int) -> tuple[I64, I64, I64]:
    """Per group (attempt -> group index) and step: how many attempts reached it, and the sums of their
    times from the previous step and from the entry (ms)."""
    counts, from_previous, from_start = _sums(att.reached, att.times, readonly(group), groups, steps)
    return counts, from_previous, from_start


@nb.njit(cache=True, nogil=True)
def _sums(reached: I64, times: I64, group: I64, groups: int, steps: int) -> tuple[I64, I64, I64]:
    counts = np.zeros((groups, steps), np.int64)
    from_previous = np.zeros((groups, steps), np.int64)
    from_start = np.zeros((groups, steps), np.int64)
    for i in range(reached.shape[0]):
        g = group[i]
        for k in range(reached[i]):
            counts[g, k] += 1
            if k:
                from_previous[g, k] += times[i, k] - times[i, k - 1]
                from_start[g, k] += times[i, k] - times[i, 0]
    return counts, from_previous, from_start


@nb.njit(cache=True, nogil=True, inline="always")
def _entry(rows: I64, x: int) -> int:
    return int((rows[x, INFO] >> ENTRY_SHIFT) - 1)


@nb.njit(cache=True, nogil=True, inline="always")
def _lane(rows: I64, x: int, lanes: bool) -> int:
    return rows[x, LANE] if lanes else -1


@nb.njit(cache=True, nogil=True)
def _first_at_or_after(rows: I64, a: int, e: int, value: int) -> int:
    """The first position in [a, e) whose time is >= value (times ascend in a user's rows)."""
    lo, hi = a, e
    while lo < hi:
        mid = (lo + hi) >> 1
        if rows[mid, TIME] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def _attempt(rows: I64, a: int, e: int, x: int, steps: int, window: int, grace: int, used: I64, out: I64) -> int:
    """Walks one attempt entered at row x of the user's rows [a, e); writes each step's time to `out`
    and returns the number of steps reached."""
    t0 = rows[x, TIME]
    limit = t0 + window
    out[0] = t0
    used[0] = rows[x, SEQ]
    prev = t0
    for k in range(1, steps):
        bit = np.int64(1) << k
        y = _first_at_or_after(rows, a, e, prev - grace)
        found = -1
        while y < e and rows[y, TIME] <= limit:
            if rows[y, INFO] & bit:
                free = True
                for j in range(k):
                    if used[j] == rows[y, SEQ]:
                        free = False
                        break
                if free:
                    found = y
                    break
            y += 1
        if found < 0:
            return k
        used[k] = rows[found, SEQ]
        out[k] = rows[found, TIME]
        prev = out[k]
    return steps


@nb.njit(cache=True, nogil=True)
def _has(values: I64, count: int, value: int) -> bool:
    for j in range(count):  # noqa: SIM110 (numba compiles loops, not generators)
        if values[j] == value:
            return True
    return False


@nb.njit(cache=True, nogil=True)
def _grow(values: I64) -> I64:
    bigger = np.empty(values.shape[0] * 2, np.int64)
    bigger[: values.shape[0]] = values
    return bigger


@nb.njit(cache=True, nogil=True)
def _walk_partition(rows: I64, first: I64, users: int, at: int, rules: Rules, out: Out) -> int:
    """Walks the users of one grouped partition (user j's rows are rows[first[j]:first[j + 1]]); writes
    attempts from slot `at` on and returns the slot after the last one written."""
    steps, window, grace, totals, lanes = rules
    att_bucket, att_lane, att_reached, att_times = out
    used = np.empty(steps, np.int64)
    user_lanes = np.empty(16, np.int64)
    seen = np.empty(16, np.int64)  # (lane, bucket) keys already entered, for uniques
    for u in range(users):
        a, e = first[u], first[u + 1]
        if totals:
            nl = 0
            for x in range(a, e):
                if _entry(rows, x) >= 0 and not _has(user_lanes, nl, _lane(rows, x, lanes)):
                    if nl == user_lanes.shape[0]:
                        user_lanes = _grow(user_lanes)
                    user_lanes[nl] = _lane(rows, x, lanes)
                    nl += 1
            for j in range(nl):  # each lane chains its own attempts
                busy_until = np.int64(-(1 << 62))
                for x in range(a, e):
                    if _entry(rows, x) < 0 or _lane(rows, x, lanes) != user_lanes[j]:
                        continue
                    if rows[x, TIME] <= busy_until:
                        continue
                    r = _attempt(rows, a, e, x, steps, window, grace, used, att_times[at])
                    att_bucket[at] = _entry(rows, x)
                    att_lane[at] = user_lanes[j]
                    att_reached[at] = r
                    # The exit: a conversion's latest step (with the grace period that need not be
                    # the last step's), else the end of the window.
                    busy_until = rows[x, TIME] + window
                    if r == steps:
                        busy_until = att_times[at, 0]
                        for k in range(1, steps):
                            busy_until = max(busy_until, att_times[at, k])
                    at += 1
        else:
            ns = 0
            for x in range(a, e):
                bucket = _entry(rows, x)
                if bucket < 0:
                    continue
                lane = _lane(rows, x, lanes)
                key = (lane + 1) * (1 << 31) + bucket
                if _has(seen, ns, key):
                    continue
                if ns == seen.shape[0]:
                    seen = _grow(seen)
                seen[ns] = key
                ns += 1
                att_bucket[at] = bucket
                att_lane[at] = lane
                att_reached[at] = _attempt(rows, a, e, x, steps, window, grace, used, att_times[at])
                at += 1
    return at


@nb.njit(cache=True, nogil=True)
def _walk(keys: I64, rows: I64, part_start: I64, p0: int, p1: int, rules: Rules, out: Out, written: I64) -> None:
    """Groups and walks partitions [p0, p1), one at a time in this thread's buffers."""
    buffers = scratch(part_start, rows.shape[1])
    first, buf = buffers[3], buffers[5]
    for p in range(p0, p1):
        users = group_partition(keys, rows, part_start[p], part_start[p + 1], buffers)
        written[p] = _walk_partition(buf, first, users, part_start[p], rules, out) - part_start[p]
