"""Date ranges as Mixpanel reads them: `YYYY-MM-DD`, both ends inclusive, in a given timezone. The rules
live in mixhouse.domain.calendar; this module keeps the names its callers import."""

from __future__ import annotations

from datetime import timedelta

from mixhouse.domain.calendar import checked_range, day_start_ms, parse_date, today_in


def date_range_ms(
    from_value: str | None, to_value: str | None, timezone: str, project_timezone: str | None = None
) -> tuple[int, int]:
    """[start, end) in UTC epoch ms for the inclusive day range, checked as Mixpanel checks it.

    "Today" is the later of today in `timezone` and in the project's timezone, so that a project
    ahead of UTC can ask for its own today."""
    start = parse_date("from_date", from_value)
    end = parse_date("to_date", to_value)
    today = max(today_in(timezone), today_in(project_timezone or timezone))
    span = checked_range(start, end, timezone, today=today)
    return day_start_ms(span.first, timezone), day_start_ms(span.last + timedelta(days=1), timezone)


__all__ = ["date_range_ms", "day_start_ms", "parse_date", "today_in"]
