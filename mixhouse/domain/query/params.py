"""Parameters shared by the Query API endpoints: dates, units, types, event lists, limits.

Counting happens in the project's timezone: `from_date`/`to_date` are days there, both inclusive.
The legacy v2 form, `unit` + `interval` counted back from now, is accepted where dates are absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TypeVar

import orjson

from mixhouse.domain.calendar import DateRange as DateRange  # re-exported: its callers import it from here
from mixhouse.domain.calendar import Unit as Unit
from mixhouse.domain.calendar import back_from_now, checked_range, parse_date, today_in
from mixhouse.domain.project import Project
from mixhouse.errors import BadRequest, MissingParameter

Params = Mapping[str, str]
E = TypeVar("E", bound=StrEnum)


class CountType(StrEnum):
    GENERAL = "general"
    UNIQUE = "unique"
    AVERAGE = "average"


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
    return back_from_now(unit, interval, project.timezone)


def parse_date_range(params: Params, project: Project, *, default_unit: Unit = Unit.DAY) -> DateRange:
    """`from_date`/`to_date`, or v2's `unit` + `interval` counted back from the current unit."""
    if get(params, "from_date") is None and get(params, "to_date") is None and get(params, "interval"):
        unit = parse_enum(params, "unit", Unit, default_unit)
        interval = parse_int(params, "interval", low=1, high=10_000)
        assert interval is not None
        return back_from_now(unit, interval, project.timezone)
    first = parse_date("from_date", get(params, "from_date"))
    last = parse_date("to_date", get(params, "to_date"))
    return checked_range(first, last, project.timezone, today=today_in(project.timezone))


def parse_unit(params: Params, allowed: Sequence[Unit] = tuple(Unit), default: Unit = Unit.DAY) -> Unit:
    """`unit`, one of `allowed` (case-insensitive); anything else is Mixpanel's 400."""
    unit = parse_enum(params, "unit", Unit, default)
    if unit not in allowed:
        raise BadRequest("Invalid parameter: unit")
    return unit


TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no")


def bool_value(raw: str | None, default: bool = False) -> bool | None:
    """`1`/`true`/`yes` and `0`/`false`/`no` (any case, spaces around); absent or blank: `default`;
    anything else: None."""
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    return None


def parse_bool(params: Params, name: str, default: bool = False, *, strict: bool = True) -> bool:
    """A boolean parameter (see bool_value). `strict`: another word is a 400; else it reads as false."""
    value = bool_value(params.get(name), default)
    if value is None:
        if strict:
            raise BadRequest(f"Invalid parameter: {name}")
        return False
    return value
