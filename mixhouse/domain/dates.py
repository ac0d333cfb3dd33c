"""Date ranges as Mixpanel reads them: `YYYY-MM-DD`, both ends inclusive, in a given timezone."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from mixhouse.errors import BadRequest, MissingParameter

# Exactly yyyy-mm-dd, as the docs write it: Python's fromisoformat alone also takes 20261201 and 2026-W48-1.
_YYYY_MM_DD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(name: str, value: object) -> date:
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
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)).timestamp() * 1000)


def date_range_ms(
    from_value: str | None, to_value: str | None, timezone: str, project_timezone: str | None = None
) -> tuple[int, int]:
    """[start, end) in UTC epoch ms for the inclusive day range, checked as Mixpanel checks it.

    "Today" is the later of today in `timezone` and in the project's timezone, so that a project
    ahead of UTC can ask for its own today."""
    start = parse_date("from_date", from_value)
    end = parse_date("to_date", to_value)
    if end > max(today_in(timezone), today_in(project_timezone or timezone)):
        raise BadRequest("to_date cannot be later than today")
    if start > end:
        raise BadRequest("from_date cannot be later than to_date")
    return day_start_ms(start, timezone), day_start_ms(end + timedelta(days=1), timezone)
