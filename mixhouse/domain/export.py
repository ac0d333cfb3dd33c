"""The raw export request (https://developer.mixpanel.com/reference/raw-event-export): which events, in which range, shaped how."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from mixhouse.domain.dates import date_range_ms
from mixhouse.domain.project import Project, TimeMode
from mixhouse.errors import BadRequest
from mixhouse.expr.plan import EventExpr

MAX_LIMIT = 100_000


@dataclass(frozen=True)
class ExportQuery:
    project: Project
    start_ms: int  # inclusive
    end_ms: int  # exclusive
    events: tuple[str, ...] | None
    where: EventExpr | None  # over the stored row, which shows the canonical id (see the engine)
    limit: int | None
    time_in_ms: bool

    @property
    def shift_to_project_timezone(self) -> bool:
        return self.project.time_mode is TimeMode.PROJECT


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def parse_event_list(value: str | None) -> tuple[str, ...] | None:
    if value is None or value.strip() == "":
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Invalid JSON Format: event must be a JSON array of event names, got {value!r}") from exc
    if isinstance(parsed, str):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(e, str) for e in parsed):
        raise BadRequest("Invalid parameter: event must be a JSON array of event names")
    return tuple(parsed)


def parse_export_query(project: Project, params: Mapping[str, str]) -> ExportQuery:
    zone = project.timezone if project.time_mode is TimeMode.PROJECT else "UTC"
    start_ms, end_ms = date_range_ms(params.get("from_date"), params.get("to_date"), zone, project.timezone)
    limit: int | None = None
    raw_limit = params.get("limit")
    if raw_limit not in (None, ""):
        try:
            limit = int(str(raw_limit))
        except ValueError as exc:
            raise BadRequest(f"Invalid parameter: limit must be an integer, got {raw_limit!r}") from exc
        if not 0 < limit <= MAX_LIMIT:
            raise BadRequest(f"Invalid parameter: limit must be between 1 and {MAX_LIMIT}")
    events = parse_event_list(params.get("event"))
    text = params.get("where")
    # datetime("...") is read in the zone the dates are read in.
    where = EventExpr.parse(text, timezone=zone) if text and text.strip() else None
    return ExportQuery(
        project=project,
        start_ms=start_ms,
        end_ms=end_ms,
        events=events,
        where=where,
        limit=limit,
        time_in_ms=_flag(params.get("time_in_ms")),
    )
