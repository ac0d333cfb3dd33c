"""The funnel kernel's input and output, shared by every engine: the rows an engine's query returns (Arrow:
user key, time, seq, step/entry info, segment keys) packed into the kernel's numpy chunks, and the
kernel's attempts summed into the figures per (bucket, segment). Arrow and numpy only."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mixhouse.domain.query.funnels import OVERALL, StepFigures
from mixhouse.engine.kernels.funnel import STEP_BITS, Attempts, sum_attempts


def kernel_columns(table: pa.Table) -> tuple[list[list[npt.NDArray[np.int64]]], list[str]]:
    """The kernel's input chunks (key, time, seq, info[, lane]) and the segment of each lane code.

    With segments, every row gets lane -1, and each step-1 event that can start an attempt gets one
    extra row per segment value: its key, time and seq, its entry bucket without a step mask, and the
    value's code as lane (built with Arrow and numpy, one vectorised step for all events)."""
    key, t, s, info = (table.column(c) for c in ("k", "t", "s", "info"))
    chunks: list[list[npt.NDArray[np.int64]]] = []
    segmented = "segs" in table.column_names
    for i in range(key.num_chunks):
        piece = [key.chunk(i).to_numpy().view(np.int64), t.chunk(i).to_numpy(), s.chunk(i).to_numpy()]
        piece.append(info.chunk(i).to_numpy())
        if segmented:
            piece.append(np.full(len(piece[0]), -1, np.int64))
        chunks.append(piece)
    if not segmented:
        return chunks, []
    segs = table.column("segs").combine_chunks()
    values = pc.list_flatten(segs)
    owner = pc.list_parent_indices(segs)
    known = pc.is_valid(values)  # a value with no segment key (an object) enters no segment
    values, owner = values.filter(known), owner.filter(known).to_numpy()
    if len(values) == 0:
        return chunks, []
    encoded = values.dictionary_encode()
    names = [str(v) for v in encoded.dictionary.to_pylist()]
    owners = table.select(["k", "t", "s", "info"]).take(owner)
    key_o, t_o, s_o, info_o = (owners.column(c).combine_chunks().to_numpy() for c in ("k", "t", "s", "info"))
    lanes = [key_o.view(np.int64), t_o, s_o, info_o & ~STEP_BITS, encoded.indices.to_numpy().astype(np.int64)]
    chunks.append(lanes)
    return chunks, names


def step_figures(att: Attempts, steps: int, base: date, segments: list[str]) -> list[StepFigures]:
    """Counts and mean step times per (bucket, lane), from one row per attempt."""
    if len(att.bucket) == 0:
        return []
    lanes = len(segments) + 1
    group = att.bucket * lanes + (att.lane + 1)
    groups = int(group.max()) + 1
    if groups <= 4 * len(group) + 1_000_000:  # dense enough: bincount without a sort
        keys = np.flatnonzero(np.bincount(group, minlength=groups))
        index = np.full(groups, -1, np.int64)
        index[keys] = np.arange(len(keys))
        group = index[group]
    else:
        keys, group = np.unique(group, return_inverse=True)
    counts, from_previous, from_start = sum_attempts(att, group, len(keys), steps)
    figures = []
    for g, key in enumerate(keys.tolist()):
        bucket, lane = divmod(key, lanes)
        n = counts[g].tolist()
        figures.append(
            StepFigures(
                bucket=base + timedelta(days=bucket),
                segment=OVERALL if lane == 0 else segments[lane - 1],
                counts=tuple(n),
                avg_ms=(None, *(from_previous[g, k] / n[k] if n[k] else None for k in range(1, steps))),
                avg_from_start_ms=(None, *(from_start[g, k] / n[k] if n[k] else None for k in range(1, steps))),
            )
        )
    return figures
