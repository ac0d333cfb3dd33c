"""Parameters shared by the Query API endpoints: dates, units, types, event lists, limits.

Counting happens in the project's timezone: `from_date`/`to_date` are days there, both inclusive.
The legacy v2 form, `unit` + `interval` counted back from now, is accepted where dates are absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar
from zoneinfo import ZoneInfo

import orjson

from mixhouse.domain.dates import day_start_ms, parse_date, today_in
from mixhouse.domain.project import Project
from mixhouse.errors import BadRequest, MissingParameter

Params = Mapping[str, str]
E = TypeVar("E", bound=StrEnum)


class Unit(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class CountType(StrEnum):
    GENERAL = "general"
    UNIQUE = "unique"
    AVERAGE = "average"


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


def get(params: Params, name: str) -> str | None:
    value = params.get(name)
    return value if value is not None and value.strip() != "" else None


def require(params: Params, name: str) -> str:
    value = get(params, name)
    if value is None:
        raise MissingParameter(name)
    return value


def parse_int(
    params: Params, name: str, default: int | None = None, *, low: int | None = None, high: int | None = None
) -> int | None:
    raw = get(params, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"Invalid parameter: {name}") from exc
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadRequest(f"Invalid parameter: {name}")
    return value


def parse_enum(params: Params, name: str, enum: type[E], default: E) -> E:
    raw = get(params, name)
    if raw is None:
        return default
    try:
        return enum(raw.strip().lower())
    except ValueError as exc:
        raise BadRequest(f"Invalid parameter: {name}") from exc


def parse_json(params: Params, name: str) -> object | None:
    raw = get(params, name)
    if raw is None:
        return None
    try:
        value: object = orjson.loads(raw)
        return value
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Invalid JSON Format: {name}") from exc


def parse_event_names(params: Params, name: str = "event") -> list[str] | None:
    """A JSON array of names, or (as old clients send it) one bare name."""
    raw = get(params, name)
    if raw is None:
        return None
    if raw.lstrip().startswith("["):
        value = parse_json(params, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"Invalid parameter: {name}")
        return value
    if raw.lstrip().startswith('"'):
        value = parse_json(params, name)
        if not isinstance(value, str):
            raise BadRequest(f"Invalid parameter: {name}")
        return [value]
    return [raw]


def _back_from_now(project: Project, unit: Unit, interval: int) -> DateRange:
    today = today_in(project.timezone)
    if unit is Unit.MONTH:
        month_index = today.year * 12 + today.month - 1 - (interval - 1)
        first = date(month_index // 12, month_index % 12 + 1, 1)
    elif unit is Unit.WEEK:
        first = today - timedelta(days=today.weekday()) - timedelta(weeks=interval - 1)
    elif unit is Unit.DAY:
        first = today - timedelta(days=interval - 1)
    else:  # hour and minute: the days that the last `interval` units touch
        now = datetime.now(ZoneInfo(project.timezone))
        span = timedelta(hours=interval - 1) if unit is Unit.HOUR else timedelta(minutes=interval - 1)
        first = (now - span).date()
    return DateRange(first, today, project.timezone)


def parse_date_range(params: Params, project: Project, *, default_unit: Unit = Unit.DAY) -> DateRange:
    """`from_date`/`to_date`, or v2's `unit` + `interval` counted back from the current unit."""
    if get(params, "from_date") is None and get(params, "to_date") is None and get(params, "interval"):
        unit = parse_enum(params, "unit", Unit, default_unit)
        interval = parse_int(params, "interval", low=1, high=10_000)
        assert interval is not None
        return _back_from_now(project, unit, interval)
    first = parse_date("from_date", get(params, "from_date"))
    last = parse_date("to_date", get(params, "to_date"))
    if last > today_in(project.timezone):
        raise BadRequest("to_date cannot be later than today")
    if first > last:
        raise BadRequest("from_date cannot be later than to_date")
    return DateRange(first, last, project.timezone)
