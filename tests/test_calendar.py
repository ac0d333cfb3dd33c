"""The one calendar (mixhouse/domain/calendar.py) and the parameter parsers beside it: bucket starts, DST,
v2's counting back from now, ranking, units and booleans. Fixed dates only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mixhouse.domain.calendar import (
    Buckets,
    DateRange,
    Unit,
    add_units,
    back_from_now,
    bucket_start,
    bucket_starts,
    checked_range,
    day_start_ms,
    local_starts,
    month_after,
    top_segments,
    wall_clock_hours,
)
from mixhouse.domain.query.params import bool_value, parse_bool, parse_unit
from mixhouse.domain.query.segmentation import LABEL_FORMATS, bucket_labels
from mixhouse.errors import BadRequest


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    assert bucket_start(date(2024, 1, 7), Unit.WEEK) == date(2024, 1, 1)  # a Sunday
    assert bucket_start(date(2024, 1, 8), Unit.WEEK) == date(2024, 1, 8)  # a Monday
    assert bucket_start(date(2024, 2, 29), Unit.MONTH) == date(2024, 2, 1)
    assert bucket_start(date(2024, 2, 29), Unit.DAY) == date(2024, 2, 29)


def test_bucket_starts_cover_the_first_day() -> None:
    assert bucket_starts(date(2024, 1, 3), date(2024, 1, 20), Unit.WEEK) == [
        date(2024, 1, 1),
        date(2024, 1, 8),
        date(2024, 1, 15),
    ]
    assert bucket_starts(date(2023, 11, 15), date(2024, 2, 1), Unit.MONTH) == [
        date(2023, 11, 1),
        date(2023, 12, 1),
        date(2024, 1, 1),
        date(2024, 2, 1),
    ]
    assert bucket_starts(date(2024, 1, 30), date(2024, 2, 1), Unit.DAY) == [
        date(2024, 1, 30),
        date(2024, 1, 31),
        date(2024, 2, 1),
    ]
    assert bucket_starts(date(2024, 1, 1), date(2024, 1, 10), "day", every_days=4) == [
        date(2024, 1, 1),
        date(2024, 1, 5),
        date(2024, 1, 9),
    ]


def test_months_roll_over_years_and_clamp_the_day() -> None:
    assert month_after(date(2023, 12, 31)) == date(2024, 1, 1)
    assert add_units(date(2024, 1, 31), Unit.MONTH, 1) == date(2024, 2, 29)
    assert add_units(date(2024, 3, 15), Unit.MONTH, -3) == date(2023, 12, 15)
    assert add_units(date(2024, 1, 1), Unit.WEEK, 2) == date(2024, 1, 15)
    assert add_units(date(2024, 1, 1), "day", -1) == date(2023, 12, 31)


def test_hours_across_daylight_saving_changes() -> None:
    """New York: 2024-03-10 has no 02:00 hour; 2024-11-03 has 01:00 twice, one bucket."""
    zone = "America/New_York"
    spring = local_starts(day_start_ms(date(2024, 3, 10), zone), day_start_ms(date(2024, 3, 11), zone), Unit.HOUR, zone)
    assert len(spring) == 23 and datetime(2024, 3, 10, 2) not in spring
    autumn = local_starts(day_start_ms(date(2024, 11, 3), zone), day_start_ms(date(2024, 11, 4), zone), Unit.HOUR, zone)
    assert len(autumn) == 24 and autumn.count(datetime(2024, 11, 3, 1)) == 1
    minutes = local_starts(
        day_start_ms(date(2024, 1, 1), "UTC"), day_start_ms(date(2024, 1, 1), "UTC") + 180_000, Unit.MINUTE, "UTC"
    )
    assert minutes == [datetime(2024, 1, 1, 0, m) for m in range(3)]
    assert len(wall_clock_hours(date(2024, 3, 10), date(2024, 3, 10))) == 24


def test_back_from_now_counts_whole_units_up_to_the_current_one() -> None:
    now = datetime(2024, 3, 13, 0, 30)  # a Wednesday, half past midnight
    assert back_from_now(Unit.DAY, 3, "UTC", now=now) == DateRange(date(2024, 3, 11), date(2024, 3, 13), "UTC")
    assert back_from_now(Unit.WEEK, 2, "UTC", now=now).first == date(2024, 3, 4)
    assert back_from_now(Unit.MONTH, 3, "UTC", now=now).first == date(2024, 1, 1)
    assert back_from_now(Unit.MONTH, 4, "UTC", now=now).first == date(2023, 12, 1)
    assert back_from_now(Unit.HOUR, 2, "UTC", now=now).first == date(2024, 3, 12)
    assert back_from_now(Unit.MINUTE, 30, "UTC", now=now).first == date(2024, 3, 13)


def test_checked_range() -> None:
    assert checked_range(date(2024, 1, 1), date(2024, 1, 1), "UTC", today=date(2024, 1, 1)).days() == [date(2024, 1, 1)]
    with pytest.raises(BadRequest, match="to_date cannot be later than today"):
        checked_range(date(2024, 1, 1), date(2024, 1, 2), "UTC", today=date(2024, 1, 1))
    with pytest.raises(BadRequest, match="from_date cannot be later than to_date"):
        checked_range(date(2024, 1, 2), date(2024, 1, 1), "UTC")
    berlin = DateRange(date(2024, 1, 1), date(2024, 1, 1), "Europe/Berlin")
    assert (berlin.start_ms, berlin.end_ms) == (1704063600000, 1704150000000)


def test_segments_rank_by_total_then_key() -> None:
    assert top_segments({"a": 3, "c": 5, "b": 5}, 2) == ["b", "c"]
    assert top_segments([("x", 1.0), ("y", 2.0)], None) == ["y", "x"]


def test_units_and_booleans() -> None:
    assert parse_unit({"unit": " Week "}) is Unit.WEEK
    assert parse_unit({}, default=Unit.MONTH) is Unit.MONTH
    with pytest.raises(BadRequest, match="Invalid parameter: unit"):
        parse_unit({"unit": "hour"}, (Unit.DAY, Unit.WEEK, Unit.MONTH))
    with pytest.raises(BadRequest, match="Invalid parameter: unit"):
        parse_unit({"unit": "fortnight"})
    assert [bool_value(v) for v in ("1", "TRUE", " yes", "0", "false", "No", "", None, "maybe")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        None,
    ]
    assert parse_bool({"x": "true"}, "x") and not parse_bool({}, "x") and parse_bool({}, "x", True)
    assert not parse_bool({"x": "maybe"}, "x", strict=False)
    with pytest.raises(BadRequest, match="Invalid parameter: x"):
        parse_bool({"x": "maybe"}, "x")


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/New_York", date(2024, 3, 10)),
        ("America/New_York", date(2024, 11, 3)),
        ("Australia/Lord_Howe", date(2024, 4, 7)),  # clocks go back 30 minutes
        ("Australia/Lord_Howe", date(2024, 10, 6)),  # and forward 30 minutes
        ("Asia/Kathmandu", date(2024, 1, 1)),  # +05:45
    ],
)
def test_minutes_match_converting_every_instant(zone: str, day: date) -> None:
    """local_starts converts one instant per hour when the offset does not change inside it: the same
    minutes as converting every instant, also where an offset changes by 30 minutes."""
    start, end = day_start_ms(day, zone), day_start_ms(day + timedelta(days=1), zone)
    expected: dict[datetime, None] = {}
    for ms in range(start, end, 60_000):
        local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(zone))
        expected[local.replace(tzinfo=None, second=0, microsecond=0)] = None
    assert local_starts(start, end, Unit.MINUTE, zone) == list(expected)


def test_labels_are_the_documented_formats() -> None:
    """bucket_labels writes with isoformat what LABEL_FORMATS says (strftime), also before year 1000."""
    for unit in (Unit.MINUTE, Unit.HOUR):
        starts = [datetime(2024, 11, 3, 1, 0 if unit is Unit.HOUR else 7), datetime(999, 1, 1, 5)]
        assert list(bucket_labels(starts, unit)) == [s.strftime(LABEL_FORMATS[unit]) for s in starts]
    assert bucket_labels([datetime(2024, 1, 8)], Unit.WEEK) == ("2024-01-08",)
    assert bucket_labels([datetime(2024, 2, 1)], Unit.MONTH) == ("2024-02-01",)


def test_engines_get_weeks_as_days_from_the_week_start() -> None:
    """The week start crosses the seam as data: 7-day buckets from the Monday on or before the first day
    (local to the zone: Berlin's 2024-01-07 starts at 23:00 UTC on Saturday)."""
    start = day_start_ms(date(2024, 1, 7), "Europe/Berlin")
    weeks = Buckets.of(start, start + 86_400_000, "Europe/Berlin", Unit.WEEK)
    assert (weeks.unit, weeks.every_days, weeks.anchor) == (Unit.WEEK, 7, date(2024, 1, 1))
    months = Buckets.of(start, start + 86_400_000, "Europe/Berlin", Unit.MONTH)
    assert (months.unit, months.every_days, months.anchor) == (Unit.MONTH, None, None)
    assert Buckets.every(start, start, "UTC", 3, date(2024, 1, 7)).every_days == 3
