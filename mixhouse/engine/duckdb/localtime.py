"""Wall-clock time in a project's timezone on DuckDB: the zone's offsets are worked out once per query
(mixhouse/engine/common/localtime.py, shared with the ClickHouse engine) and added with a small CASE."""

from __future__ import annotations

from mixhouse.engine.common.localtime import offset_ms_sql, offset_segments

__all__ = ["local_timestamp_sql", "offset_ms_sql", "offset_segments"]


def local_timestamp_sql(time_ms_sql: str, timezone: str, start_ms: int | None = None, end_ms: int | None = None) -> str:
    """SQL TIMESTAMP (no zone): the wall-clock time in `timezone` of the instant `time_ms_sql`."""
    return f"epoch_ms({time_ms_sql} + {offset_ms_sql(time_ms_sql, timezone, start_ms, end_ms)})"
