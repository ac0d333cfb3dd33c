"""Date-time rules shared by the interpreter and the printers (which fold literal dates in Python).

A datetime is an int of UTC epoch milliseconds. Strings are read as dates when they match
`YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|±HH:MM]` exactly (fraction truncated to milliseconds); a string
without an offset is wall time in the scope's timezone. Values outside years 0001..9999 are undefined.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from zoneinfo import ZoneInfo

# Also used verbatim by the DuckDB printer (RE2 accepts the same syntax), so both sides agree on what a
# date string is. ASCII classes on purpose: Python's \d would accept other scripts' digits.
ISO_PATTERN = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.([0-9]+))?)?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
)
_ISO = re.compile(ISO_PATTERN)
_EPOCH = dt.datetime(1970, 1, 1)
MIN_MS = (dt.datetime(1, 1, 1) - _EPOCH) // dt.timedelta(milliseconds=1)
MAX_MS = (dt.datetime(9999, 12, 31, 23, 59, 59, 999000) - _EPOCH) // dt.timedelta(milliseconds=1)


def in_range(ms: int) -> int | None:
    return ms if MIN_MS <= ms <= MAX_MS else None


def parse_iso(text: str, timezone: str = "UTC") -> int | None:
    """Epoch ms of an ISO date string, or None when it is not one."""
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    try:
        local = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    ms = (local - _EPOCH) // dt.timedelta(milliseconds=1) + int((fraction or "")[:3].ljust(3, "0"))
    if offset is not None:
        if offset != "Z":
            sign = -1 if offset[0] == "-" else 1
            ms -= sign * (int(offset[1:3]) * 60 + int(offset[4:6])) * 60_000
    elif timezone != "UTC":
        # Wall time in the zone; an ambiguous or skipped hour resolves as zoneinfo's fold=0 does.
        aware = local.replace(tzinfo=ZoneInfo(timezone))
        ms -= int(aware.utcoffset().total_seconds()) * 1000  # type: ignore[union-attr]
    return in_range(ms)


def from_epoch_seconds(seconds: float) -> int | None:
    if not math.isfinite(seconds):
        return None
    ms = seconds * 1000
    if not MIN_MS <= ms <= MAX_MS:
        return None
    return math.floor(ms)


def render(ms: int, timezone: str = "UTC") -> str:
    """`YYYY-MM-DDTHH:MM:SS` in the scope's timezone: how a datetime becomes a segment key or a string."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    if timezone != "UTC":
        moment = moment.astimezone(ZoneInfo(timezone))
    # Not strftime: glibc prints year 1 as "1", not "0001".
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
