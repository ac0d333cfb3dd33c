"""What every engine's answer to JQL's aggregate shapes (mixhouse/jql/pushdown.py) shares: whether a
group's sums, added in any order, are the left fold's exactly."""

from __future__ import annotations

# When every number of a group is a multiple of 2**-grain and the sum of their magnitudes times 2**grain
# stays under 2**52, every partial sum is exact whatever the order (the same for the squares, multiples of
# 2**-2*grain), so an engine's unordered sum is the runtime's left fold.
_EXACT_BELOW = 2.0**52


def exact(n: int, total: float | None, squares: float | None, magnitude: float | None, grain: int | None) -> bool:
    if n == 0:
        return True
    if grain is None or grain > 10 or magnitude is None or squares is None:
        return False
    return magnitude * 2.0**grain < _EXACT_BELOW and squares * 4.0**grain < _EXACT_BELOW
