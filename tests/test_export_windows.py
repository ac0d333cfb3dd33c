"""Export sorts one window of rows at a time; the windows cover the range back to back."""

from __future__ import annotations

from mixhouse.engine.duckdb.engine import export_windows

H = 3_600_000


def test_windows_cover_the_range_without_gaps_and_respect_the_row_cap() -> None:
    counts = [(10, 60), (11, 50), (13, 10), (14, 500), (20, 5)]
    windows = export_windows(counts, 9 * H + 123, 21 * H, max_rows=100)
    assert windows == [(9 * H + 123, 11 * H), (11 * H, 14 * H), (14 * H, 20 * H), (20 * H, 21 * H)]
    assert export_windows([], 0, 5 * H, max_rows=100) == [(0, 5 * H)]
    assert export_windows([(0, 10), (1, 10)], 0, 2 * H, max_rows=100) == [(0, 2 * H)]
