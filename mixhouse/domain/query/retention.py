"""Retention (https://developer.mixpanel.com/reference/retention-query, https://developer.mixpanel.com/reference/retention-frequency-query; Mixpanel's legacy Data Export API v2 documentation): `/retention` (first-time `birth` and recurring `compounded`),
`/retention/addiction` (frequency) and the legacy v2 `events/retention` with its ratios.

Each endpoint reads its parameters once into a typed request, an analysis turns it into a typed result
(asking the engine), and the wire function shapes Mixpanel's reply.

Rules and every [I] choice: docs/query-funnels-retention.md."""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from mixhouse.domain.calendar import DAY_UNITS, add_units, bucket_starts, today_in, top_segments
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import CsvReply, QueryContext
from mixhouse.domain.query.funnels import OVERALL, read_dates
from mixhouse.domain.query.params import (
    CountType,
    DateRange,
    Params,
    Unit,
    get,
    parse_bool,
    parse_date_range,
    parse_enum,
    parse_event_names,
    parse_int,
    parse_unit,
)
from mixhouse.domain.query.segmentation import wants_csv
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, MissingParameter
from mixhouse.expr.plan import EventExpr


@dataclass(frozen=True)
class RetentionSpec(Spec["list[CohortRow]"]):
    """Cohorts are born in [start_ms, end_ms); returns are counted in `interval_count + 1` intervals of
    `interval` units after each user's birth, in the project's wall-clock time."""

    project_id: int
    start_ms: int
    end_ms: int
    timezone: str
    compounded: bool
    born_event: str | None  # None: any event
    born_where: EventExpr | None
    event: str | None  # None: any event
    where: EventExpr | None
    unit: str  # day | week | month
    first_period: date  # where cohort periods start: weeks are 7 days from it (the domain's week rule)
    interval: int
    interval_count: int
    segment: EventExpr | None = None  # segment keys of the birth event


@dataclass(frozen=True)
class CohortRow:
    """Users of one cohort (and segment) and, per interval index, how many came back (max index if unbounded)."""

    cohort: date
    segment: str
    first: int
    returned: tuple[int, ...]  # index i: users who returned in interval i
    reached: tuple[int, ...]  # index i: users whose last return interval (within range) is i


@dataclass(frozen=True)
class AddictionSpec(Spec[list[tuple[date, str, int, int]]]):
    project_id: int
    start_ms: int
    end_ms: int
    timezone: str
    event: str | None
    where: EventExpr | None
    unit: str  # day | week | month: the period
    first_period: date  # as in RetentionSpec
    addiction_unit: str  # hour | day: the slots counted within a period
    segment: EventExpr | None = None


@dataclass(frozen=True)
class EventRetentionSpec(Spec[list[tuple[str, date, int, int]]]):
    """v2 `events/retention`: per event, users active in period P and again k periods later."""

    project_id: int
    start_ms: int
    end_ms: int
    timezone: str
    events: tuple[str, ...]
    unit: str
    first_period: date  # as in RetentionSpec


def _expr(params: Params, project: Project, name: str) -> EventExpr | None:
    """The expression parameter `name` (a filter, or `on`), read in the project's zone."""
    text = get(params, name)
    return EventExpr.parse(text, timezone=project.timezone) if text else None


def _unit(params: Params) -> str:
    return parse_unit(params, DAY_UNITS).value


def cohort_keys(span: DateRange, unit: str) -> list[date]:
    """The starts of the periods that cover the range (the first may start before it)."""
    return bucket_starts(span.first, span.last, unit)


def is_v2_form(ctx: QueryContext) -> bool:
    """v2's retention on `/retention`: `unit` + `interval` counted back from now, no dates, no born_event."""
    return (
        get(ctx.params, "from_date") is None
        and get(ctx.params, "to_date") is None
        and get(ctx.params, "born_event") is None
        and get(ctx.params, "interval") is not None
    )


def _top(totals: dict[str, int], limit: int) -> list[str]:
    return top_segments(totals, limit)


@dataclass(frozen=True)
class RetentionRequest:
    """`/retention`: users born in `span` (their first `born_event`, or with `compounded` every period's
    first event), counted again in `interval_count + 1` intervals of `interval` units after birth."""

    span: DateRange
    compounded: bool
    born_event: str | None
    unit: str  # day | week | month
    interval: int
    interval_count: int
    limit: int  # segments reported, most users first
    unbounded: bool  # an interval counts users who came back in it or later
    born_where: EventExpr | None = None
    event: str | None = None
    where: EventExpr | None = None
    on: EventExpr | None = None

    @classmethod
    def read(cls, params: Params, project: Project) -> RetentionRequest:
        span = read_dates(params, project)
        kind = (get(params, "retention_type") or "birth").strip().lower()
        if kind not in ("birth", "compounded"):
            raise BadRequest("Invalid parameter: retention_type")
        compounded = kind == "compounded"
        born_event = get(params, "born_event")
        if born_event is None and not compounded:
            raise MissingParameter("born_event")
        unit = _unit(params)
        interval = parse_int(params, "interval", 1, low=1, high=90 if unit == "day" else 3660)
        interval_count = parse_int(params, "interval_count", 1, low=0, high=3660)
        limit = parse_int(params, "limit", 255, low=1, high=10_000)
        assert interval is not None and interval_count is not None and limit is not None
        unbounded = parse_bool(params, "unbounded_retention")
        born_where = _expr(params, project, "born_where")
        event = get(params, "event")
        where = _expr(params, project, "where")
        on = _expr(params, project, "on")
        return cls(
            span, compounded, born_event, unit, interval, interval_count, limit, unbounded, born_where, event, where, on
        )


@dataclass(frozen=True)
class CohortCounts:
    """One cohort: its size, and per interval that has begun for its first day, the users counted."""

    first: int
    counts: list[int]


@dataclass(frozen=True)
class RetentionResult:
    """Per segment (OVERALL first, then the top segments by cohort size), per cohort start in order."""

    segments: dict[str, dict[date, CohortCounts]]


def retention_result(engine: Engine, project_id: int, req: RetentionRequest) -> RetentionResult:
    span, unit, interval = req.span, req.unit, req.interval
    keys = cohort_keys(span, unit)
    spec = RetentionSpec(
        project_id=project_id,
        start_ms=span.start_ms,
        end_ms=span.end_ms,
        timezone=span.timezone,
        compounded=req.compounded,
        born_event=req.born_event,
        born_where=req.born_where,
        event=req.event,
        where=req.where,
        unit=unit,
        first_period=keys[0],
        interval=interval,
        interval_count=req.interval_count,
        segment=req.on,
    )
    rows = engine.query(spec)
    today = today_in(span.timezone)
    by_key = {(r.cohort, r.segment): r for r in rows}

    def cohorts(segment: str) -> dict[date, CohortCounts]:
        out: dict[date, CohortCounts] = {}
        for key in keys:
            row = by_key.get((key, segment))
            # Only intervals that have begun for the cohort's first day are reported.
            shown = [i for i in range(req.interval_count + 1) if add_units(key, unit, i * interval) <= today]
            if row is None:
                counts = [0 for _ in shown]
            elif req.unbounded:
                counts = [sum(row.reached[i:]) for i in shown]
            else:
                counts = [row.returned[i] for i in shown]
            out[key] = CohortCounts(row.first if row else 0, counts)
        return out

    if req.on is None:
        return RetentionResult({OVERALL: cohorts(OVERALL)})
    totals: dict[str, int] = {}
    for r in rows:
        if r.segment != OVERALL:
            totals[r.segment] = totals.get(r.segment, 0) + r.first
    return RetentionResult({OVERALL: cohorts(OVERALL), **{s: cohorts(s) for s in _top(totals, req.limit)}})


def retention(ctx: QueryContext) -> dict[str, Any] | CsvReply:
    if is_v2_form(ctx):
        return event_retention(ctx)
    req = RetentionRequest.read(ctx.params, ctx.project)
    result = retention_result(ctx.engine, ctx.project.id, req)
    shaped = {
        segment: {key.isoformat(): {"counts": c.counts, "first": c.first} for key, c in cohorts.items()}
        for segment, cohorts in result.segments.items()
    }
    return shaped[OVERALL] if req.on is None else shaped


def slots_per_period(period: date, unit: str, addiction_unit: str) -> int:
    days = {"day": 1, "week": 7}.get(unit) or calendar.monthrange(period.year, period.month)[1]
    return days * 24 if addiction_unit == "hour" else days


@dataclass(frozen=True)
class AddictionRequest:
    """`/retention/addiction`: per `unit` period, how many users were active in how many distinct
    `addiction_unit` slots of it."""

    span: DateRange
    unit: str  # day | week | month
    addiction_unit: str  # hour | day
    limit: int
    event: str | None = None
    where: EventExpr | None = None
    on: EventExpr | None = None

    @classmethod
    def read(cls, params: Params, project: Project) -> AddictionRequest:
        span = read_dates(params, project)
        unit = _unit(params)
        addiction_unit = (get(params, "addiction_unit") or "hour").strip().lower()
        if addiction_unit not in ("hour", "day"):
            raise BadRequest("Invalid parameter: addiction_unit")
        if addiction_unit == "day" and unit == "day":
            raise BadRequest("Invalid parameter: addiction_unit")
        limit = parse_int(params, "limit", 255, low=1, high=10_000)
        assert limit is not None
        event = get(params, "event")
        where = _expr(params, project, "where")
        on = _expr(params, project, "on")
        return cls(span, unit, addiction_unit, limit, event, where, on)


@dataclass(frozen=True)
class AddictionResult:
    """Per segment (OVERALL first, then the top segments by activity), per period start in order: element
    k = users active in at least k + 1 distinct slots of the period."""

    segments: dict[str, dict[date, list[int]]]


def addiction_result(engine: Engine, project_id: int, req: AddictionRequest) -> AddictionResult:
    span, unit = req.span, req.unit
    keys = cohort_keys(span, unit)
    spec = AddictionSpec(
        project_id=project_id,
        start_ms=span.start_ms,
        end_ms=span.end_ms,
        timezone=span.timezone,
        event=req.event,
        where=req.where,
        unit=unit,
        first_period=keys[0],
        addiction_unit=req.addiction_unit,
        segment=req.on,
    )
    rows = engine.query(spec)  # (period, segment, slots, users)
    hist: dict[tuple[date, str], dict[int, int]] = {}
    for period, seg, slots, users in rows:
        hist.setdefault((period, seg), {})[slots] = users

    def series(segment: str) -> dict[date, list[int]]:
        out = {}
        for key in keys:
            size = slots_per_period(key, unit, req.addiction_unit)
            h = hist.get((key, segment), {})
            out[key] = [sum(n for s, n in h.items() if s >= k + 1) for k in range(size)]
        return out

    if req.on is None:
        return AddictionResult({OVERALL: series(OVERALL)})
    totals: dict[str, int] = {}
    for (_, seg), h in hist.items():
        if seg != OVERALL:
            totals[seg] = totals.get(seg, 0) + sum(h.values())
    return AddictionResult({OVERALL: series(OVERALL), **{s: series(s) for s in _top(totals, req.limit)}})


def addiction(ctx: QueryContext) -> dict[str, Any]:
    """`/retention/addiction`: per period, element k = users active in at least k+1 distinct slots."""
    req = AddictionRequest.read(ctx.params, ctx.project)
    result = addiction_result(ctx.engine, ctx.project.id, req)
    shaped = {
        segment: {key.isoformat(): counts for key, counts in series.items()}
        for segment, series in result.segments.items()
    }
    return {"data": shaped[OVERALL] if req.on is None else shaped}


MAX_V2_PERIODS = 400


@dataclass(frozen=True)
class EventRetentionRequest:
    """v2 `events/retention`: per event, users active in a period and again k periods later."""

    events: tuple[str, ...]
    unit: Unit  # day | week | month
    span: DateRange
    csv: bool

    @classmethod
    def read(cls, params: Params, project: Project) -> EventRetentionRequest:
        csv_wanted = wants_csv(params)
        names = parse_event_names(params, "event")
        if not names:
            raise MissingParameter("event")
        parse_enum(params, "type", CountType, CountType.UNIQUE)
        unit = parse_unit(params, DAY_UNITS)
        span = parse_date_range(params, project, default_unit=unit)
        if len(cohort_keys(span, unit.value)) > MAX_V2_PERIODS:
            # The reply grows with the square of the periods: 2020 to today by day would be ~300 MB.
            raise BadRequest(
                f"Invalid parameter: from_date (events/retention spans at most {MAX_V2_PERIODS} {unit.value}s)"
            )
        return cls(tuple(names), unit, span, csv_wanted)


@dataclass(frozen=True)
class EventRetentionResult:
    """The period starts of the range, and per (event, period, k) the users active in the period and k
    periods later (k = 0: active in it); absent cells are 0."""

    periods: list[date]
    users: dict[tuple[str, date, int], int]


def event_retention_result(engine: Engine, project_id: int, req: EventRetentionRequest) -> EventRetentionResult:
    periods = cohort_keys(req.span, req.unit.value)
    span = req.span
    spec = EventRetentionSpec(
        project_id, span.start_ms, span.end_ms, span.timezone, req.events, req.unit.value, periods[0]
    )
    rows = engine.query(spec)  # (event, period, k, users)
    return EventRetentionResult(periods, {(e, p, k): n for e, p, k, n in rows})


def event_retention(ctx: QueryContext) -> dict[str, Any] | CsvReply:
    """v2 `events/retention`: per event and cohort period, the share of its users active k periods later."""
    req = EventRetentionRequest.read(ctx.params, ctx.project)
    result = event_retention_result(ctx.engine, ctx.project.id, req)
    periods, cells, unit = result.periods, result.users, req.unit
    label = f"{{}} {unit.value}s later"
    data: dict[str, Any] = {}
    for name in req.events:
        values: dict[str, dict[str, float]] = {}
        descriptions: dict[str, dict[str, str]] = {}
        for i, period in enumerate(periods):
            later = range(1, len(periods) - i)
            if not later:
                continue
            size = cells.get((name, period, 0), 0)
            values[period.isoformat()] = {
                label.format(k): round(cells.get((name, period, k), 0) / size, 4) if size else 0.0 for k in later
            }
            descriptions[period.isoformat()] = {label.format(k): period.isoformat() for k in later}
        data[name] = {
            "descriptions": descriptions,
            "series": [label.format(k) for k in range(1, len(periods))],
            "values": values,
        }
    if req.csv:
        return _event_retention_csv(data)
    return {"data": data, "meta": {"unit": unit.value}}


def _event_retention_csv(data: dict[str, Any]) -> CsvReply:
    """One row per event and cohort period, one column per "k units later" (empty where not yet elapsed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    series: list[str] = max((d["series"] for d in data.values()), key=len, default=[])
    writer.writerow(["event", "date", *series])
    for name, d in data.items():
        for period, ratios in d["values"].items():
            writer.writerow([name, period, *(repr(ratios[label]) if label in ratios else "" for label in series)])
    return CsvReply(out.getvalue())
