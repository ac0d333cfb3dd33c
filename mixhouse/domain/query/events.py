"""Event breakdown and discovery endpoints (https://developer.mixpanel.com/reference/query-top-events and the other Event Breakdown pages; Mixpanel's legacy Data Export API v2 documentation): `/events`, `/events/top`,
`/events/names`, `/events/properties`, `/events/properties/top`, `/events/properties/values`, and
`/engage/properties` (profile property names, which discovery clients probe next to them).

The time series ones are segmentation with other keys (the event name, a property's value) and reuse
its machinery; the discovery ones count names and values. Choices: docs/query-segmentation.md."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from mixhouse.domain.calendar import day_start_ms, today_in
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
    SeriesResult,
    SeriesSpec,
    Timeline,
    capped_limit,
    parse_timeline,
    segmentation_payload,
    segments_csv,
    series_values,
    wants_csv,
)
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, MissingParameter
from mixhouse.expr import EventExpr
from mixhouse.lexicon import effects as lexicon

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
    """Values (segment keys of `key`) of one property, most frequent first."""

    project_id: int
    start_ms: int
    end_ms: int
    events: tuple[str, ...] | None
    key: EventExpr
    limit: int


@dataclass(frozen=True)
class ProfilePropertiesSpec(Spec["list[ProfilePropertyRow]"]):
    """Profile property names: how many profiles (passing `where`, a filter over the profile) have each,
    and its type."""

    project_id: int
    where: EventExpr | None
    limit: int


@dataclass(frozen=True)
class ProfilePropertyRow:
    name: str
    count: int
    type: str


# Profile datetimes ($last_seen, $created) are stored in UTC, so a datetime("...") over a profile is read in
# UTC too.
PROFILE_TIMEZONE = "UTC"


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


def _key_text(value: Any) -> str:
    """A JSON value as its segment key: `true`, `5`, `2.5`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- requests: each endpoint's parameters, read once at the edge in the order Mixpanel checks them -------


@dataclass(frozen=True)
class DiscoveryRequest:
    """`/events/names`, `/events/properties/top` and `/events/properties/values`: a range of days (the
    last 31 by default), optional event names, a property `name` (values only) and a limit."""

    span: DateRange
    events: tuple[str, ...] | None
    name: str | None
    limit: int

    @classmethod
    def read_names(cls, params: Params, project: Project) -> DiscoveryRequest:
        parse_enum(params, "type", CountType, CountType.GENERAL)  # accepted; order is by volume either way
        span = discovery_range(params, project)
        return cls(span, None, None, _limit(params, 255))

    @classmethod
    def read_property_names(cls, params: Params, project: Project) -> DiscoveryRequest:
        span = discovery_range(params, project)
        parse_enum(params, "type", CountType, CountType.GENERAL)
        return cls(span, _optional_event(params), None, _limit(params, 10))

    @classmethod
    def read_property_values(cls, params: Params, project: Project) -> DiscoveryRequest:
        name = require(params, "name")
        span = discovery_range(params, project)
        parse_enum(params, "type", CountType, CountType.GENERAL)
        return cls(span, _optional_event(params), name, _limit(params, 255))


@dataclass(frozen=True)
class EventsRequest:
    """`/events`: one zero-filled series per requested event name."""

    events: tuple[str, ...]
    timeline: Timeline
    count_type: CountType
    csv: bool

    @classmethod
    def read(cls, params: Params, project: Project) -> EventsRequest:
        names = parse_event_names(params, "event")
        if names is None:
            raise MissingParameter("event")
        if not names:
            raise BadRequest("Invalid parameter: event")
        wanted = tuple(dict.fromkeys(names))
        timeline = parse_timeline(params, project)
        count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
        return cls(wanted, timeline, count_type, wants_csv(params))


@dataclass(frozen=True)
class EventTopRequest:
    """`/events/top`: today's events (project days) by `count_type`."""

    count_type: CountType
    limit: int

    @classmethod
    def read(cls, params: Params) -> EventTopRequest:
        count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
        return cls(count_type, _limit(params, 100))


@dataclass(frozen=True)
class EventPropertiesRequest:
    """`/events/properties`: one event's counts per bucket, split by the values of property `name`."""

    event: str
    name: str
    timeline: Timeline
    count_type: CountType
    values: tuple[str, ...] | None
    limit: int | None
    csv: bool

    @classmethod
    def read(cls, params: Params, project: Project) -> EventPropertiesRequest:
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
        return cls(event, name, timeline, count_type, wanted, limit, wants_csv(params))


@dataclass(frozen=True)
class ProfilePropertiesRequest:
    """`/engage/properties`: profile property names, of the profiles passing `where`."""

    where: EventExpr | None
    limit: int

    @classmethod
    def read(cls, params: Params) -> ProfilePropertiesRequest:
        text = get(params, "where")
        where = EventExpr.parse(text, timezone=PROFILE_TIMEZONE) if text else None
        return cls(where, _limit(params, 100_000))


# -- analyses -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopEvent:
    event: str
    amount: int | float
    percent_change: float


def event_names_of(engine: Engine, project_id: int, req: DiscoveryRequest) -> list[str]:
    return engine.query(EventNamesSpec(project_id, req.span.start_ms, req.span.end_ms, req.limit))


def events_series(engine: Engine, project_id: int, req: EventsRequest) -> SeriesResult:
    timeline = req.timeline
    rows = engine.query(SeriesSpec(project_id, req.events, timeline.buckets, req.count_type))
    return SeriesResult(timeline, series_values(rows, timeline, req.count_type, keys=req.events))


def top_events(engine: Engine, project: Project, req: EventTopRequest) -> list[TopEvent]:
    """Today's events by count, with the change from yesterday: (today - yesterday) / yesterday."""
    today = today_in(project.timezone)
    spec = EventTopSpec(
        project.id,
        day_start_ms(today - timedelta(days=1), project.timezone),
        day_start_ms(today, project.timezone),
        day_start_ms(today + timedelta(days=1), project.timezone),
        req.count_type,
        req.limit,
    )
    out = []
    for row in engine.query(spec):
        # With nothing yesterday, any activity today is a 100% rise.
        change = (row.today - row.yesterday) / row.yesterday if row.yesterday else (1.0 if row.today else 0.0)
        amount: int | float = row.today if req.count_type is CountType.AVERAGE else int(row.today)
        out.append(TopEvent(row.event, amount, change))
    return out


def event_property_series(engine: Engine, project: Project, req: EventPropertiesRequest) -> SeriesResult:
    timeline = req.timeline
    spec = SeriesSpec(
        project.id,
        (req.event,),
        timeline.buckets,
        req.count_type,
        key=EventExpr.property(req.name, timezone=project.timezone),
        values=req.values,
        limit=capped_limit(req.limit, timeline),
    )
    rows = engine.query(spec)
    return SeriesResult(timeline, series_values(rows, timeline, req.count_type))


def property_names_of(engine: Engine, project_id: int, req: DiscoveryRequest) -> list[tuple[str, int]]:
    # The server's bookkeeping on every event ($insert_id, $mp_api_*, mp_processing_time_ms...) is left out,
    # or it would fill the top of every list (docs/query-segmentation.md).
    spec = PropertyNamesSpec(
        project_id, req.span.start_ms, req.span.end_ms, req.events, req.limit, hidden=tuple(sorted(SERVER_ADDED))
    )
    return engine.query(spec)


def property_values_of(engine: Engine, project: Project, req: DiscoveryRequest) -> list[str]:
    assert req.name is not None
    key = EventExpr.property(req.name, timezone=project.timezone)
    return engine.query(PropertyValuesSpec(project.id, req.span.start_ms, req.span.end_ms, req.events, key, req.limit))


def profile_properties_of(engine: Engine, project_id: int, req: ProfilePropertiesRequest) -> list[ProfilePropertyRow]:
    return engine.query(ProfilePropertiesSpec(project_id, req.where, req.limit))


# -- the Mixpanel wire --------------------------------------------------------------------------------


def event_names(ctx: QueryContext) -> list[str]:
    """Names of the events seen in the range (default: the last 31 days), most frequent first; events
    hidden in Lexicon left out (mixhouse/lexicon/effects.py)."""
    req = DiscoveryRequest.read_names(ctx.params, ctx.project)

    def ask(n: int) -> list[str]:
        return event_names_of(ctx.engine, ctx.project.id, replace(req, limit=n))

    return lexicon.visible_event_names(ctx.catalog, ctx.project.id, ask, req.limit)


def events(ctx: QueryContext) -> Any:
    """Counts of several events per bucket: one zero-filled series per requested name."""
    req = EventsRequest.read(ctx.params, ctx.project)
    result = events_series(ctx.engine, ctx.project.id, req)
    if req.csv:
        return segments_csv(["event"], result.values, result.timeline.labels)
    return segmentation_payload(result.values, result.timeline)


def event_top(ctx: QueryContext) -> dict[str, Any]:
    req = EventTopRequest.read(ctx.params)
    rows = top_events(ctx.engine, ctx.project, req)
    out = [{"amount": r.amount, "event": r.event, "percent_change": r.percent_change} for r in rows]
    return {"events": out, "type": req.count_type.value}


def event_properties(ctx: QueryContext) -> Any:
    """One event's counts per bucket, split by the values of one property (segmentation shape)."""
    req = EventPropertiesRequest.read(ctx.params, ctx.project)
    result = event_property_series(ctx.engine, ctx.project, req)
    if req.csv:
        return segments_csv([req.name], result.values, result.timeline.labels)
    return segmentation_payload(result.values, result.timeline)


def event_properties_top(ctx: QueryContext) -> dict[str, dict[str, int]]:
    """Property names of an event (of all events without `event`), most frequent first."""
    req = DiscoveryRequest.read_property_names(ctx.params, ctx.project)

    def ask(n: int) -> list[tuple[str, int]]:
        return property_names_of(ctx.engine, ctx.project.id, replace(req, limit=n))

    # Properties hidden in Lexicon are left out (mixhouse/lexicon/effects.py).
    rows = lexicon.visible_properties(ctx.catalog, ctx.project.id, req.events, ask, lambda row: row[0], req.limit)
    return {name: {"count": count} for name, count in rows}


def event_properties_values(ctx: QueryContext) -> list[str]:
    """Values of one property (of one event, or of all), most frequent first."""
    return property_values_of(ctx.engine, ctx.project, DiscoveryRequest.read_property_values(ctx.params, ctx.project))


def engage_properties(ctx: QueryContext) -> dict[str, Any]:
    """Profile property names with the number of profiles having each and the most common type."""
    rows = profile_properties_of(ctx.engine, ctx.project.id, ProfilePropertiesRequest.read(ctx.params))
    return {"status": "ok", "results": {r.name: {"count": r.count, "type": r.type} for r in rows}}
