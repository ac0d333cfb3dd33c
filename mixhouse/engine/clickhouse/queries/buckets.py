"""Time buckets in ClickHouse SQL: the start of an event's bucket as the domain's `Buckets` describes it,
as Int64 epoch ms of the naive local start (the engine turns it into a naive datetime)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from mixhouse.domain.calendar import Buckets, Unit
from mixhouse.engine.common.localtime import offset_ms_sql

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1)


def bucket_sql(buckets: Buckets, time_ms_sql: str) -> str:
    """Int64: the naive local start (ms) of the bucket of the event at `time_ms_sql`. The zone's offsets
    over the range are worked out once per query (a CASE over few transitions, standard SQL)."""
    local = f"({time_ms_sql} + {offset_ms_sql(time_ms_sql, buckets.timezone, buckets.start_ms, buckets.end_ms)})"
    if buckets.every_days:
        assert buckets.anchor is not None
        anchor = (buckets.anchor - date(1970, 1, 1)).days
        days = buckets.every_days
        return f"toInt64(({anchor} + intDiv(intDiv({local}, {DAY_MS}) - {anchor}, {days}) * {days}) * {DAY_MS})"
    if buckets.unit is Unit.WEEK:
        raise ValueError("week buckets are whole days from the domain's week start (Buckets.of)")
    if buckets.unit is Unit.MONTH:
        return f"toInt64(toStartOfMonth(toDateTime(intDiv({local}, 1000), 'UTC'))) * {DAY_MS}"
    step = {Unit.MINUTE: 60_000, Unit.HOUR: 3_600_000, Unit.DAY: DAY_MS}[buckets.unit]
    return f"toInt64(intDiv({local}, {step}) * {step})"


def naive(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))
