"""The per-query offset table gives the same wall-clock times as DuckDB's ICU conversion, across DST
transitions, in zones with odd offsets, and at the exact second of each transition."""

from __future__ import annotations

import duckdb
import pytest

from mixhouse.engine.duckdb.localtime import local_timestamp_sql, offset_segments

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "America/Sao_Paulo", "UTC"]
START_MS = 1_577_836_800_000  # 2020-01-01
END_MS = 1_735_689_600_000  # 2025-01-01


@pytest.mark.parametrize("zone", ZONES)
def test_same_wall_clock_as_icu(zone: str) -> None:
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    # Every hour of five years, plus each transition instant and the second before it.
    transitions = [s * 1000 for s, _ in offset_segments(zone, START_MS // 1000, END_MS // 1000)[1:]]
    edges = [t + d for t in transitions for d in (-1000, -1, 0, 1, 1000)]
    conn.execute(
        "CREATE TABLE t AS SELECT unnest(range($s, $e, 3600000) || $edges) AS time_ms",
        {"s": START_MS, "e": END_MS, "edges": edges},
    )
    ours = local_timestamp_sql("time_ms", zone, START_MS, END_MS)
    icu = f"timezone('{zone}', epoch_ms(time_ms)::TIMESTAMPTZ)"
    mismatches = conn.execute(f"SELECT count(*) FROM t WHERE {ours} <> {icu}").fetchall()[0][0]
    assert mismatches == 0
    if zone in ("America/New_York", "Europe/London", "Australia/Lord_Howe"):
        assert len(transitions) == 10  # two a year: the edges above really were at transitions


def test_open_ended_ranges_cover_today() -> None:
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    sql = local_timestamp_sql("x", "America/New_York")
    same = conn.execute(
        f"SELECT {sql} = timezone('America/New_York', epoch_ms(x)::TIMESTAMPTZ) FROM (SELECT epoch_ms(now()::TIMESTAMP) AS x)"
    ).fetchall()[0][0]
    assert same
