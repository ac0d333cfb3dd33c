"""The compiled per-user kernels, in-process: grouping invariants, and the funnel walk against the
brute-force reference on streams with heavy users, ties, out-of-order input and many partitions."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixhouse.engine.kernels import funnel as kfunnel
from mixhouse.engine.kernels import users as kusers
from tests import analytics_reference as ref

BASE_MS = 1_709_251_200_000  # 2024-03-01 00:00 UTC
DAY_MS = 86_400_000


@contextmanager
def partitions_of(rows: int) -> Iterator[None]:
    saved = kusers.ROWS_PER_PARTITION
    kusers.ROWS_PER_PARTITION = rows
    try:
        yield
    finally:
        kusers.ROWS_PER_PARTITION = saved


def _readonly(values: list[int]) -> np.ndarray:
    array = np.array(values, dtype=np.int64)
    array.flags.writeable = False
    return array


def _chunks(columns: list[list[int]], cuts: list[int]) -> list[list[np.ndarray]]:
    """The columns cut into chunks at `cuts` (as Arrow hands over record batches)."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(columns[0])}), len(columns[0])]
    return [[_readonly(col[a:b]) for col in columns] for a, b in itertools.pairwise(bounds)]


def _grouped(data: kusers.Partitioned) -> list[list[tuple[int, ...]]]:
    """Every user's rows as the kernels see them, partition by partition."""
    buffers = kusers.scratch(data.part_start, data.rows.shape[1])
    users: list[list[tuple[int, ...]]] = []
    for p in range(len(data.part_start) - 1):
        count = kusers.group_partition(data.keys, data.rows, data.part_start[p], data.part_start[p + 1], buffers)
        first, buf = buffers[3], buffers[5]
        users += [[tuple(int(v) for v in buf[x]) for x in range(first[j], first[j + 1])] for j in range(count)]
    return users


row_st = st.tuples(
    st.integers(0, 12),  # user: few users, so that some have many rows (> 32: the merge sort)
    st.integers(0, 30).map(lambda x: x * 500),  # time: ties are common
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row_st, min_size=1, max_size=300), cuts=st.lists(st.integers(0, 300), max_size=4))
def test_grouping_keeps_every_row_and_orders_each_user(rows: list[tuple[int, int]], cuts: list[int]) -> None:
    # Keys spread over the whole 64 bits (as MD5 halves are), user u -> a fixed key.
    keys = [((u + 1) * 0x9E3779B97F4A7C15) % 2**64 - 2**63 for u, _ in rows]
    seqs = random.Random(len(rows)).sample(range(10 * len(rows)), len(rows))
    columns = [keys, [t for _, t in rows], seqs, [u for u, _ in rows]]
    with partitions_of(16):  # many partitions even on a few rows
        users = _grouped(kusers.partition_by_user(_chunks(columns, cuts)))
    # Every input row once (key dropped: the payload column carries the user).
    assert sorted(r for user in users for r in user) == sorted(zip(columns[1], seqs, columns[3], strict=True))
    # One run per user, time-ordered with seq breaking ties.
    assert len(users) == len({u for u, _ in rows})
    for user in users:
        assert len({r[2] for r in user}) == 1
        assert user == sorted(user, key=lambda r: (r[0], r[1]))


def _kernel_funnel(
    events: list[ref.Ev], steps: list[str], window_ms: int, start_ms: int, end_ms: int, totals: bool
) -> dict[date, tuple[list[int], list[float | None], list[float | None]]]:
    """The kernel fed as the DuckDB engine feeds it: rows of matching events, mask and entry day."""
    kept = ref.resolve(events, {})
    random.Random(len(kept)).shuffle(kept)  # the engine's rows come in no particular order
    columns: list[list[int]] = [[], [], [], []]
    for e in kept:
        mask = sum(1 << i for i, s in enumerate(steps) if s == e.event)
        if not mask:
            continue
        entry = (e.time_ms // DAY_MS - BASE_MS // DAY_MS + 1) if mask & 1 and start_ms <= e.time_ms < end_ms else 0
        for col, value in zip(
            columns, (hash(e.distinct_id) % 2**63, e.time_ms, e.seq, mask | entry << 32), strict=True
        ):
            col.append(value)
    if not columns[0]:
        return {}
    att = kfunnel.walk_funnel(
        kusers.partition_by_user(_chunks(columns, [len(kept) // 3])), len(steps), window_ms, ref.GRACE_MS, totals
    )
    days = sorted(set(att.bucket.tolist()))
    group = np.array([days.index(b) for b in att.bucket.tolist()], dtype=np.int64)
    counts, from_previous, from_start = kfunnel.sum_attempts(att, group, len(days), len(steps))
    out = {}
    for g, day in enumerate(days):
        n = counts[g].tolist()
        avg = [None, *(from_previous[g, k] / n[k] if n[k] else None for k in range(1, len(steps)))]
        avg_start = [None, *(from_start[g, k] / n[k] if n[k] else None for k in range(1, len(steps)))]
        out[date(2024, 3, 1) + timedelta(days=day)] = (n, avg, avg_start)
    return out


event_st = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    st.integers(0, 4),  # user: few, so each has many events
    st.integers(0, 2),  # day
    st.integers(0, 40).map(lambda x: x * 500),
)


@settings(max_examples=200, deadline=None)
@given(
    raw=st.lists(event_st, min_size=1, max_size=200),
    steps=st.lists(st.sampled_from(["A", "B", "C"]), min_size=2, max_size=5),
    window_s=st.sampled_from([1, 3, 10, 86_400]),
    totals=st.booleans(),
)
def test_funnel_kernel_matches_brute_force(
    raw: list[tuple[str, int, int, int]], steps: list[str], window_s: int, totals: bool
) -> None:
    events = [ref.Ev(e, f"u{u}", BASE_MS + d * DAY_MS + ms, i) for i, (e, u, d, ms) in enumerate(raw)]
    start, end = BASE_MS, BASE_MS + 2 * DAY_MS
    expected = ref.funnel(events, steps, window_s * 1000, start, end, totals=totals)
    with partitions_of(32):
        assert _kernel_funnel(events, steps, window_s * 1000, start, end, totals) == expected


@pytest.mark.parametrize("rows_per_user", [31, 33, 500])
def test_a_heavy_user_is_sorted(rows_per_user: int) -> None:
    """Runs of more than 32 rows take the merge sort, shorter ones the insertion sort."""
    rng = random.Random(rows_per_user)
    rows = [(u, rng.randrange(50) * 500) for u in range(3) for _ in range(rows_per_user)]
    rng.shuffle(rows)
    keys = [(u + 1) * 7919 for u, _ in rows]
    seqs = rng.sample(range(10 * len(rows)), len(rows))
    columns = [keys, [t for _, t in rows], seqs, [u for u, _ in rows]]
    users = _grouped(kusers.partition_by_user(_chunks(columns, [len(rows) // 2])))
    assert sorted(len(user) for user in users) == [rows_per_user] * 3
    for user in users:
        assert user == sorted(user, key=lambda r: (r[0], r[1]))


def test_a_heavy_user_through_the_funnel() -> None:
    rng = random.Random(3)
    events = [
        ref.Ev(rng.choice("ABC"), f"u{rng.randrange(3)}", BASE_MS + rng.randrange(2 * DAY_MS // 500) * 500, i)
        for i in range(3000)
    ]
    for totals in (False, True):
        expected = ref.funnel(events, ["A", "B", "C", "A"], 60_000, BASE_MS, BASE_MS + 2 * DAY_MS, totals=totals)
        got = _kernel_funnel(events, ["A", "B", "C", "A"], 60_000, BASE_MS, BASE_MS + 2 * DAY_MS, totals)
        assert got == expected


def test_aliases_count_for_their_canonical_user() -> None:
    """Rows of a merged id join their canonical user's rows, wherever the partitions fall."""
    keys = [11, 22, 33, 11, 44]  # 22 and 33 are aliases of 11; 44 stands alone
    columns = [keys, [5, 1, 3, 2, 4], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]
    aliases = (np.array([22, 33], dtype=np.int64), np.array([11, 11], dtype=np.int64))
    with partitions_of(1):
        users = _grouped(kusers.partition_by_user(_chunks(columns, [2]), aliases))
    assert sorted(users) == [[(1, 1, 2), (2, 3, 4), (3, 2, 3), (5, 0, 1)], [(4, 4, 5)]]


def test_memory_lends_kept_buffers_and_keeps_no_more_than_its_limit() -> None:
    from mixhouse.engine.kernels import memory

    memory._free.clear()  # other tests' buffers would be lent first
    first = memory.take(1000, 3)
    first[:] = 7
    memory.give(first)
    again = memory.take(2000)  # fits in the kept 3000: the same memory, not a fresh array
    assert again.base is first.base or again.base is first
    assert (again == 7).all()
    memory.give(again)
    saved = memory.LIMIT_BYTES
    memory.LIMIT_BYTES = 8 * 1000
    try:
        memory.give(memory.take(5000))
        assert sum(b.nbytes for b in memory._free) <= 8 * 1000
    finally:
        memory.LIMIT_BYTES = saved
