"""The one calendar of every analysis: days, date ranges, time units, bucket starts and the ranking of
segments. Engines never decide any of it: they truncate to a unit or count days from an anchor this
module chose, and hand back bucket starts that the domain labels.

    span = DateRange(date(2024, 1, 3), date(2024, 1, 20), "Europe/Berlin")
    bucket_starts(span.first, span.last, Unit.WEEK)     # Mondays: 2024-01-01, 2024-01-08, 2024-01-15
    top_segments({"a": 3, "b": 5, "c": 5}, 2)          # ["b", "c"]: by total, then by key

Rules (Mixpanel's documentation names the units; where it is silent, docs/query-segmentation.md):
- a day is a day in the project's timezone; a date range is whole days, both ends inclusive;
- weeks start on Monday (ISO), months on the 1st; a week or month bucket that covers the first day of the
  range starts before it;
- hour and minute buckets are the local wall-clock hours/minutes of the instants in the range: a skipped
  DST hour has no bucket, a repeated one is a single bucket.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from mixhouse.errors import BadRequest, MissingParameter


class Unit(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


WEEK_STARTS_ON = 0  # Monday, as date.weekday() numbers days (ISO weeks)
DAY_UNITS = (Unit.DAY, Unit.WEEK, Unit.MONTH)
SUB_DAY_UNITS = (Unit.HOUR, Unit.MINUTE)
_SUB_DAY_STEP_MS = {Unit.HOUR: 3_600_000, Unit.MINUTE: 60_000}

# -- days ---------------------------------------------------------------------------------------------

# Exactly yyyy-mm-dd, as the docs write it: Python's fromisoformat alone also takes 20261201 and 2026-W48-1.
_YYYY_MM_DD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(name: str, value: object) -> date:
    """A `yyyy-mm-dd` parameter; missing or malformed: Mixpanel's 400."""
    if value is None or value == "":
        raise MissingParameter(name)
    text = value.strip() if isinstance(value, str) else ""
    try:
        if not _YYYY_MM_DD.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"Invalid parameter: {name} must be a date in yyyy-mm-dd format, got {value!r}") from exc


def today_in(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def day_start_ms(day: date, timezone: str) -> int:
    """UTC epoch ms of local midnight starting `day` in `timezone`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)).timestamp() * 1000)


@dataclass(frozen=True)
class DateRange:
    """Whole days [first, last] in `timezone`, and the same span as UTC epoch ms [start_ms, end_ms)."""

    first: date
    last: date
    timezone: str

    @property
    def start_ms(self) -> int:
        return day_start_ms(self.first, self.timezone)

    @property
    def end_ms(self) -> int:
        return day_start_ms(self.last + timedelta(days=1), self.timezone)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def checked_range(first: date, last: date, timezone: str, *, today: date | None = None) -> DateRange:
    """The range as Mixpanel checks it: `to_date` not after `today` (when given), `from_date` not after
    `to_date`."""
    if today is not None and last > today:
        raise BadRequest("to_date cannot be later than today")
    if first > last:
        raise BadRequest("from_date cannot be later than to_date")
    return DateRange(first, last, timezone)


def back_from_now(unit: Unit, interval: int, timezone: str, *, now: datetime | None = None) -> DateRange:
    """v2's `unit` + `interval`: the days the last `interval` units touch, the current one included."""
    moment = now if now is not None else datetime.now(ZoneInfo(timezone))
    today = moment.date()
    if unit in DAY_UNITS:
        first = add_units(bucket_start(today, unit), unit, -(interval - 1))
    else:  # hour and minute: the days that the last `interval` units touch
        span = timedelta(hours=interval - 1) if unit is Unit.HOUR else timedelta(minutes=interval - 1)
        first = (moment - span).date()
    return DateRange(first, today, timezone)


# -- bucket starts ------------------------------------------------------------------------------------


def month_after(day: date) -> date:
    """The 1st of the month after `day`'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def add_units(day: date, unit: Unit | str, n: int) -> date:
    """`day` moved by `n` days, weeks or months (a month keeps the day, clamped to the month's length)."""
    if unit == Unit.MONTH:
        year, month = divmod(day.year * 12 + day.month - 1 + n, 12)
        return date(year, month + 1, min(day.day, _stdlib_calendar.monthrange(year, month + 1)[1]))
    return day + timedelta(days=(7 if unit == Unit.WEEK else 1) * n)


def bucket_start(day: date, unit: Unit | str) -> date:
    """The start of the day/week/month bucket holding `day`."""
    if unit == Unit.WEEK:
        return day - timedelta(days=(day.weekday() - WEEK_STARTS_ON) % 7)
    if unit == Unit.MONTH:
        return day.replace(day=1)
    return day


def bucket_starts(first: date, last: date, unit: Unit | str, *, every_days: int | None = None) -> list[date]:
    """Every day/week/month bucket from the one holding `first` to the one holding `last`; with
    `every_days`, buckets of that many days from `first` instead."""
    if every_days:
        return [first + timedelta(days=i) for i in range(0, (last - first).days + 1, every_days)]
    start = bucket_start(first, unit)
    if unit == Unit.MONTH:
        starts = []
        while start <= last:
            starts.append(start)
            start = month_after(start)
        return starts
    step = 7 if unit == Unit.WEEK else 1
    return [start + timedelta(days=i) for i in range(0, (last - start).days + 1, step)]


def week_anchor(first: date) -> date:
    """The week start on or before `first`: engines count 7-day buckets from it."""
    return bucket_start(first, Unit.WEEK)


@dataclass(frozen=True)
class Buckets:
    """How an engine cuts time, part of the question it is asked: each event's local time in `timezone`
    truncated to `unit` (minute, hour, day or month), or, with `every_days`, whole steps of that many days
    counted from `anchor`, so that the week start is this module's rule, not the engine's. Events are those
    in [start_ms, end_ms). The engine answers with each bucket's start as a naive local datetime; it never
    formats or labels one.

        Buckets.of(start_ms, end_ms, "Europe/Berlin", Unit.WEEK)   # 7 days from the Monday before start
    """

    start_ms: int
    end_ms: int
    timezone: str
    unit: Unit
    every_days: int | None = None
    anchor: date | None = None

    @classmethod
    def of(cls, start_ms: int, end_ms: int, timezone: str, unit: Unit) -> Buckets:
        """Buckets of `unit`; a week is 7 days from the week start on or before the span's first day."""
        if unit is Unit.WEEK:
            first = datetime.fromtimestamp(start_ms / 1000, ZoneInfo(timezone)).date()
            return cls(start_ms, end_ms, timezone, Unit.WEEK, 7, week_anchor(first))
        return cls(start_ms, end_ms, timezone, unit)

    @classmethod
    def every(cls, start_ms: int, end_ms: int, timezone: str, days: int, anchor: date) -> Buckets:
        """Buckets of `days` days from `anchor`."""
        return cls(start_ms, end_ms, timezone, Unit.DAY, days, anchor)

    @property
    def first_day(self) -> date:
        """The local day of the span's first instant (the first bucket starts on it or up to a month before)."""
        return datetime.fromtimestamp(self.start_ms / 1000, ZoneInfo(self.timezone)).date()


def local_starts(start_ms: int, end_ms: int, unit: Unit, timezone: str) -> list[datetime]:
    """Naive local starts of the hour/minute buckets that the instants of [start_ms, end_ms) fall in, in
    order: a skipped DST hour has none, a repeated one appears once."""
    step = _SUB_DAY_STEP_MS[unit]
    zone = ZoneInfo(timezone)
    count = (end_ms - start_ms) // step
    per_hour = 3_600_000 // step
    starts: dict[datetime, None] = {}
    i = 0
    while i < count:
        # An hour of minutes at a time: when the UTC offset is the same at both ends (no change inside),
        # its minutes are consecutive local minutes; else each instant is converted on its own.
        n = min(per_hour, count - i)
        first = datetime.fromtimestamp((start_ms + i * step) / 1000, UTC).astimezone(zone)
        last = datetime.fromtimestamp((start_ms + (i + n - 1) * step) / 1000, UTC).astimezone(zone) if n > 1 else first
        if first.utcoffset() == last.utcoffset():
            base = _truncate(first, unit)
            for k in range(n):
                starts[base + timedelta(milliseconds=k * step)] = None
        else:
            for k in range(n):
                local = datetime.fromtimestamp((start_ms + (i + k) * step) / 1000, UTC).astimezone(zone)
                starts[_truncate(local, unit)] = None
        i += n
    return list(starts)


def _truncate(local: datetime, unit: Unit) -> datetime:
    if unit is Unit.MINUTE:
        return local.replace(tzinfo=None, second=0, microsecond=0)
    return local.replace(tzinfo=None, minute=0, second=0, microsecond=0)


def sub_day_count(start_ms: int, end_ms: int, unit: Unit) -> int:
    """How many hour/minute instants [start_ms, end_ms) holds (an upper bound of its buckets)."""
    return (end_ms - start_ms) // _SUB_DAY_STEP_MS[unit]


def unit_start(moment: datetime, unit: Unit) -> datetime:
    """The start of the hour or minute holding `moment`."""
    if unit is Unit.MINUTE:
        return moment.replace(second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def wall_clock_hours(first: date, last: date) -> list[datetime]:
    """Every naive local hour of the days [first, last], 24 a day (DST ignored: the keys of saved reports)."""
    start = datetime(first.year, first.month, first.day)
    return [start + timedelta(hours=h) for h in range(((last - first).days + 1) * 24)]


def as_datetime(day: date) -> datetime:
    """Local midnight of `day`, naive: the start of a day-sized bucket as engines return it."""
    return datetime(day.year, day.month, day.day)


# -- ranking ------------------------------------------------------------------------------------------


def ranking_key(key: str, total: float) -> tuple[float, str]:
    """Segments rank by their total over the whole range, largest first, ties by key (ascending). An
    engine that ranks in its own query sorts the same way (`ORDER BY total DESC, key`)."""
    return (-total, key)


def top_segments(totals: Mapping[str, float] | Iterable[tuple[str, float]], limit: int | None) -> list[str]:
    """The `limit` top segments by `ranking_key` (all of them, ranked, without a limit)."""
    pairs = totals.items() if isinstance(totals, Mapping) else totals
    ranked = sorted(pairs, key=lambda kv: ranking_key(kv[0], kv[1]))
    return [k for k, _ in (ranked if limit is None else ranked[:limit])]


__all__ = [
    "DAY_UNITS",
    "SUB_DAY_UNITS",
    "WEEK_STARTS_ON",
    "Buckets",
    "DateRange",
    "Unit",
    "add_units",
    "as_datetime",
    "back_from_now",
    "bucket_start",
    "bucket_starts",
    "checked_range",
    "day_start_ms",
    "local_starts",
    "month_after",
    "parse_date",
    "ranking_key",
    "sub_day_count",
    "today_in",
    "top_segments",
    "unit_start",
    "wall_clock_hours",
    "week_anchor",
]
