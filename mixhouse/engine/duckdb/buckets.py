"""Time buckets in DuckDB SQL: the start of an event's bucket as the domain's `Buckets` describes it.

    params: dict[str, Any] = {}
    sql = bucket_sql(spec.buckets, "e.time_ms", params)   # TIMESTAMP, naive local start of the bucket

The week start and every other calendar rule come from the domain (mixhouse/domain/calendar.py): weeks
arrive as whole 7-day steps from an anchor, so nothing here knows which day a week starts on."""

from __future__ import annotations

from typing import Any

from mixhouse.domain.calendar import Buckets, Unit
from mixhouse.engine.duckdb.localtime import local_timestamp_sql


def bucket_sql(buckets: Buckets, time_ms_sql: str, params: dict[str, Any]) -> str:
    """The TIMESTAMP start of the bucket of the event at `time_ms_sql`, local to `buckets.timezone`. Adds
    its parameters (`$unit`, or `$anchor` and `$days`) to `params`."""
    local_time = local_timestamp_sql(time_ms_sql, buckets.timezone, buckets.start_ms, buckets.end_ms)
    if buckets.every_days:
        params["anchor"] = buckets.anchor
        params["days"] = buckets.every_days
        days = f"(CAST({local_time} AS DATE) - $anchor::DATE)"
        return f"CAST($anchor::DATE + CAST(({days} // $days) * $days AS INTEGER) AS TIMESTAMP)"
    if buckets.unit is Unit.WEEK:
        raise ValueError("week buckets are whole days from the domain's week start (Buckets.of)")
    params["unit"] = buckets.unit.value
    return f"date_trunc($unit, {local_time})"


def bucket_day_sql(buckets: Buckets, time_ms_sql: str) -> str:
    """The DATE of the day, month or `every_days` bucket of the event at `time_ms_sql` (no sub-day units),
    with literals only: funnels key their entries on it in the per-row hot path."""
    local_time = local_timestamp_sql(time_ms_sql, buckets.timezone, buckets.start_ms, buckets.end_ms)
    day = f"CAST({local_time} AS DATE)"
    if buckets.every_days and buckets.every_days > 1:
        assert buckets.anchor is not None
        anchor, n = f"DATE '{buckets.anchor.isoformat()}'", buckets.every_days
        return f"({anchor} + CAST(((({day}) - {anchor}) // {n}) * {n} AS INTEGER))"
    if buckets.every_days or buckets.unit is Unit.DAY:
        return day
    if buckets.unit is Unit.MONTH:
        return f"CAST(date_trunc('month', {day}) AS DATE)"
    raise ValueError(f"{buckets.unit.value} buckets have no DATE key")
