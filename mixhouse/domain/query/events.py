"""Event breakdown and discovery endpoints (https://developer.mixpanel.com/reference/query-top-events and the other Event Breakdown pages; Mixpanel's legacy Data Export API v2 documentation): `/events`, `/events/top`,
`/events/names`, `/events/properties`, `/events/properties/top`, `/events/properties/values`, and
`/engage/properties` (profile property names, which discovery clients probe next to them).

The time series ones are segmentation with other keys (the event name, a property's value) and reuse
its machinery; the discovery ones count names and values. Choices: docs/query-segmentation.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import mixhouse.engine.duckdb.expressions  # (as before: event discovery compiles its own where, for now)
from mixhouse.domain.dates import day_start_ms, today_in
from mixhouse.domain.events import SERVER_ADDED
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import (
    CountType,
    DateRange,
    Params,
    get,
    parse_date_range,
    parse_enum,
    parse_event_names,
    parse_int,
    parse_json,
    require,
)
from mixhouse.domain.query.segmentation import (
    MAX_LIMIT,
    SeriesRow,
    SeriesSpec,
    capped_limit,
    parse_timeline,
    property_key_sql,
    segmentation_payload,
    segments_csv,
    series_values,
    wants_csv,
)
from mixhouse.domain.spec import Spec
from mixhouse.engine.duckdb.expressions import compile_filter
from mixhouse.errors import BadRequest, MissingParameter
from mixhouse.expr import parse

DISCOVERY_DAYS = 31


@dataclass(frozen=True)
class EventNamesSpec(Spec[list[str]]):
    project_id: int
    start_ms: int
    end_ms: int
    limit: int


@dataclass(frozen=True)
class EventTopSpec(Spec["list[EventTopRow]"]):
    """Per event: the value of `count_type` today and yesterday (project days)."""

    project_id: int
    yesterday_start_ms: int
    today_start_ms: int
    today_end_ms: int
    count_type: CountType
    limit: int


@dataclass(frozen=True)
class EventTopRow:
    event: str
    today: float
    yesterday: float


@dataclass(frozen=True)
class PropertyNamesSpec(Spec[list[tuple[str, int]]]):
    """Event property names and how many events carry each, most frequent first."""

    project_id: int
    start_ms: int
    end_ms: int
    events: tuple[str, ...] | None
    limit: int
    hidden: tuple[str, ...] = ()  # names left out before the limit applies


@dataclass(frozen=True)
class PropertyValuesSpec(Spec[list[str]]):
    """Values (segment keys of `key_sql`) of one property, most frequent first."""

    project_id: int
    start_ms: int
    end_ms: int
    events: tuple[str, ...] | None
    key_sql: str
    limit: int


@dataclass(frozen=True)
class ProfilePropertiesSpec(Spec["list[ProfilePropertyRow]"]):
    """Profile property names: how many profiles (passing `where_sql`, alias p) have each, and its type."""

    project_id: int
    where_sql: str | None
    limit: int


@dataclass(frozen=True)
class ProfilePropertyRow:
    name: str
    count: int
    type: str


def discovery_range(params: Params, project: Project) -> DateRange:
    """Dates, or v2's unit + interval, or else the last 31 days up to today."""
    if get(params, "from_date") or get(params, "to_date") or get(params, "interval"):
        return parse_date_range(params, project)
    today = today_in(project.timezone)
    return DateRange(today - timedelta(days=DISCOVERY_DAYS - 1), today, project.timezone)


def _limit(params: Params, default: int) -> int:
    limit = parse_int(params, "limit", default, low=1, high=100_000)
    assert limit is not None
    return limit


def _optional_event(params: Params) -> tuple[str, ...] | None:
    names = parse_event_names(params, "event")
    return tuple(names) if names is not None else None


def event_names(ctx: QueryContext) -> list[str]:
    """Names of the events seen in the range (default: the last 31 days), most frequent first."""
    project = ctx.project
    parse_enum(ctx.params, "type", CountType, CountType.GENERAL)  # accepted; order is by volume either way
    span = discovery_range(ctx.params, project)
    limit = _limit(ctx.params, 255)
    names: list[str] = ctx.engine.query(EventNamesSpec(project.id, span.start_ms, span.end_ms, limit))
    return names


def events(ctx: QueryContext) -> Any:
    """Counts of several events per bucket: one zero-filled series per requested name."""
    params, project = ctx.params, ctx.project
    names = parse_event_names(params, "event")
    if names is None:
        raise MissingParameter("event")
    if not names:
        raise BadRequest("Invalid parameter: event")
    wanted = tuple(dict.fromkeys(names))
    timeline = parse_timeline(params, project)
    count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
    csv_out = wants_csv(params)
    rows: list[SeriesRow] = ctx.engine.query(SeriesSpec(project.id, wanted, timeline, count_type))
    values = series_values(rows, timeline, count_type, keys=wanted)
    if csv_out:
        return segments_csv(["event"], values, timeline.labels)
    return segmentation_payload(values, timeline)


def event_top(ctx: QueryContext) -> dict[str, Any]:
    """Today's events by count, with the change from yesterday: (today - yesterday) / yesterday."""
    params, project = ctx.params, ctx.project
    count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
    limit = _limit(params, 100)
    today = today_in(project.timezone)
    spec = EventTopSpec(
        project.id,
        day_start_ms(today - timedelta(days=1), project.timezone),
        day_start_ms(today, project.timezone),
        day_start_ms(today + timedelta(days=1), project.timezone),
        count_type,
        limit,
    )
    rows: list[EventTopRow] = ctx.engine.query(spec)
    out = []
    for row in rows:
        # With nothing yesterday, any activity today is a 100% rise.
        change = (row.today - row.yesterday) / row.yesterday if row.yesterday else (1.0 if row.today else 0.0)
        amount: int | float = row.today if count_type is CountType.AVERAGE else int(row.today)
        out.append({"amount": amount, "event": row.event, "percent_change": change})
    return {"events": out, "type": count_type.value}


def event_properties(ctx: QueryContext) -> Any:
    """One event's counts per bucket, split by the values of one property (segmentation shape)."""
    params, project = ctx.params, ctx.project
    event = require(params, "event")
    name = require(params, "name")
    timeline = parse_timeline(params, project)
    count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
    wanted: tuple[str, ...] | None = None
    if get(params, "values") is not None:
        raw = parse_json(params, "values")
        if not isinstance(raw, list):
            raise BadRequest("Invalid parameter: values")
        wanted = tuple(v if isinstance(v, str) else _key_text(v) for v in raw)
    limit = parse_int(params, "limit", 255, low=1, high=MAX_LIMIT)
    csv_out = wants_csv(params)
    spec = SeriesSpec(
        project.id,
        (event,),
        timeline,
        count_type,
        key_sql=property_key_sql(name, project.timezone),
        values=wanted,
        limit=capped_limit(limit, timeline),
    )
    rows: list[SeriesRow] = ctx.engine.query(spec)
    values = series_values(rows, timeline, count_type)
    if csv_out:
        return segments_csv([name], values, timeline.labels)
    return segmentation_payload(values, timeline)


def _key_text(value: Any) -> str:
    """A JSON value as its segment key: `true`, `5`, `2.5`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def event_properties_top(ctx: QueryContext) -> dict[str, dict[str, int]]:
    """Property names of an event (of all events without `event`), most frequent first."""
    params, project = ctx.params, ctx.project
    span = discovery_range(params, project)
    parse_enum(params, "type", CountType, CountType.GENERAL)
    # The server's bookkeeping on every event ($insert_id, $mp_api_*, mp_processing_time_ms...) is left out,
    # or it would fill the top of every list (docs/query-segmentation.md).
    spec = PropertyNamesSpec(
        project.id,
        span.start_ms,
        span.end_ms,
        _optional_event(params),
        _limit(params, 10),
        hidden=tuple(sorted(SERVER_ADDED)),
    )
    rows: list[tuple[str, int]] = ctx.engine.query(spec)
    return {name: {"count": count} for name, count in rows}


def event_properties_values(ctx: QueryContext) -> list[str]:
    """Values of one property (of one event, or of all), most frequent first."""
    params, project = ctx.params, ctx.project
    name = require(params, "name")
    span = discovery_range(params, project)
    parse_enum(params, "type", CountType, CountType.GENERAL)
    spec = PropertyValuesSpec(
        project.id,
        span.start_ms,
        span.end_ms,
        _optional_event(params),
        property_key_sql(name, project.timezone),
        _limit(params, 255),
    )
    values: list[str] = ctx.engine.query(spec)
    return values


def engage_properties(ctx: QueryContext) -> dict[str, Any]:
    """Profile property names with the number of profiles having each and the most common type."""
    params = ctx.params
    where = get(params, "where")
    profile = mixhouse.engine.duckdb.expressions.Scope.profiles("p", timezone="UTC")
    where_sql = compile_filter(parse(where), profile) if where else None
    spec = ProfilePropertiesSpec(ctx.project.id, where_sql, _limit(params, 100_000))
    rows: list[ProfilePropertyRow] = ctx.engine.query(spec)
    return {"status": "ok", "results": {r.name: {"count": r.count, "type": r.type} for r in rows}}
