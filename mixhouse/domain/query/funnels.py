"""Funnels (https://developer.mixpanel.com/reference/funnels-query; Mixpanel's legacy Data Export API v2 documentation): today's `/funnels` by `funnel_id` and `/funnels/list`, the legacy v2
family by funnel name (`funnels` with `funnel=[names]`, `funnels/names`, `funnels/dates`), and the App
API routes that save the definitions. The counting rules live in the engine's per-user scan; this
module reads each endpoint's parameters once into a typed request (`FunnelRequest`), runs the analysis
(`funnel_result`: a FunnelSpec to the engine, its per-bucket step figures back) and shapes Mixpanel's reply.

Rules and every [I] choice: docs/query-funnels-retention.md."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mixhouse.domain.app_context import AppContext
from mixhouse.domain.calendar import (
    DAY_UNITS,
    Buckets,
    bucket_starts,
    checked_range,
    parse_date,
    today_in,
    top_segments,
)
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import (
    DateRange,
    Params,
    Unit,
    _back_from_now,
    get,
    parse_enum,
    parse_int,
    parse_json,
    parse_unit,
    require,
)
from mixhouse.domain.saved.funnels import (
    Counting,
    FunnelStep,
    FunnelStore,
    LengthUnit,
    SavedFunnel,
    check_length,
    definition_from_body,
    updated,
)
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, NotFound
from mixhouse.expr.plan import EventExpr

GRACE_MS = 2_000  # consecutive steps within 2 s count in either order (FUNDOC)
OVERALL = "$overall"


def weekly(span: DateRange) -> Buckets:
    """Weeks of 7 days from the calendar's week start on or before the range's first day."""
    return Buckets.of(span.start_ms, span.end_ms, span.timezone, Unit.WEEK)


@dataclass(frozen=True)
class FunnelStepSpec:
    event: str
    where: EventExpr | None


@dataclass(frozen=True)
class FunnelSpec(Spec["list[StepFigures]"]):
    """Entries are step-1 events in [start_ms, end_ms); later steps may fall up to window_ms after."""

    project_id: int
    start_ms: int
    end_ms: int
    window_ms: int
    steps: tuple[FunnelStepSpec, ...]
    totals: bool
    buckets: Buckets
    where: EventExpr | None = None
    segment: EventExpr | None = None  # segment keys of each step-1 event; None: $overall only
    grace_ms: int = GRACE_MS


@dataclass(frozen=True)
class StepFigures:
    """One (bucket, segment) of a funnel: per step the count and the mean times in ms (None: nobody)."""

    bucket: date
    segment: str  # OVERALL for the whole population
    counts: tuple[int, ...]
    avg_ms: tuple[float | None, ...]
    avg_from_start_ms: tuple[float | None, ...]


# -- parameters -------------------------------------------------------------------------------------


def _expr(text: str | None, timezone: str) -> EventExpr | None:
    """An event expression read in the project's zone (None for no text)."""
    return EventExpr.parse(text, timezone=timezone) if text else None


def step_specs(steps: tuple[FunnelStep, ...], timezone: str) -> tuple[FunnelStepSpec, ...]:
    return tuple(FunnelStepSpec(s.event, _expr(s.where, timezone)) for s in steps)


def read_dates(params: Params, project: Project) -> DateRange:
    """`from_date` and `to_date` (both required; not after today in the project's zone)."""
    first = parse_date("from_date", get(params, "from_date"))
    last = parse_date("to_date", get(params, "to_date"))
    return checked_range(first, last, project.timezone, today=today_in(project.timezone))


def _buckets(params: Params, span: DateRange) -> Buckets:
    """Entries grouped by their day in the project's zone: by `unit` (day, week, month), else every
    `interval` days from the range's first day."""
    if get(params, "unit") is not None:
        return Buckets.of(span.start_ms, span.end_ms, span.timezone, parse_unit(params, DAY_UNITS))
    days = parse_int(params, "interval", 1, low=1, high=3660)
    assert days is not None
    return Buckets.every(span.start_ms, span.end_ms, span.timezone, days, span.first)


def bucket_keys(buckets: Buckets, span: DateRange) -> list[date]:
    """Every bucket that starts in, or (week/month) covers the start of, the range."""
    if buckets.every_days and buckets.anchor is not None:
        return bucket_starts(buckets.anchor, span.last, Unit.DAY, every_days=buckets.every_days)
    return bucket_starts(span.first, span.last, buckets.unit)


def _window_ms(params: Params, funnel: SavedFunnel) -> int:
    length = parse_int(params, "length", funnel.length, low=1)
    unit = parse_enum(params, "length_unit", LengthUnit, funnel.length_unit)
    assert length is not None
    check_length(length, unit)
    return length * unit.ms


@dataclass(frozen=True)
class FunnelRequest:
    """One funnel over a range, read once from the request: entries are step-1 events in `span`, grouped
    into `buckets`; later steps may follow within `window_ms`; `on` splits by segment, of which the
    `limit` with the most entries are reported."""

    funnel: SavedFunnel
    span: DateRange
    buckets: Buckets
    window_ms: int
    where: EventExpr | None = None
    on: EventExpr | None = None
    limit: int = 255

    @classmethod
    def read(
        cls, params: Params, project: Project, funnel: SavedFunnel, span: DateRange, buckets: Buckets, limit: int = 255
    ) -> FunnelRequest:
        """The funnel's own parameters (`length`, `length_unit`, `where`, `on`) over a range read already."""
        window_ms = _window_ms(params, funnel)
        where = _expr(get(params, "where"), project.timezone)
        on = _expr(get(params, "on"), project.timezone)
        return cls(funnel, span, buckets, window_ms, where, on, limit)

    @classmethod
    def read_dated(cls, params: Params, project: Project, funnel: SavedFunnel) -> FunnelRequest:
        """Today's `/funnels`: `from_date`/`to_date`, `unit` or `interval`, `limit`, then the funnel's own."""
        span = read_dates(params, project)
        buckets = _buckets(params, span)
        limit = parse_int(params, "limit", 255, low=1, high=10_000)
        assert limit is not None
        return cls.read(params, project, funnel, span, buckets, limit)


@dataclass(frozen=True)
class FunnelResult:
    """Step figures per (bucket start, segment), every bucket of the range in order, and the top `limit`
    segments by entries over the range (none without `on`)."""

    buckets: list[date]
    figures: dict[tuple[date, str], StepFigures]
    segments: list[str]

    def overall(self, bucket: date) -> StepFigures | None:
        return self.figures.get((bucket, OVERALL))


def funnel_result(engine: Engine, project_id: int, req: FunnelRequest) -> FunnelResult:
    spec = FunnelSpec(
        project_id=project_id,
        start_ms=req.span.start_ms,
        end_ms=req.span.end_ms,
        window_ms=req.window_ms,
        steps=step_specs(req.funnel.steps, req.span.timezone),
        totals=req.funnel.counting is Counting.TOTALS,
        buckets=req.buckets,
        where=req.where,
        segment=req.on,
    )
    figures = engine.query(spec)
    segments = _top_segments(figures, req.limit) if req.on is not None else []
    return FunnelResult(bucket_keys(req.buckets, req.span), {(f.bucket, f.segment): f for f in figures}, segments)


def _store(ctx: QueryContext | AppContext) -> FunnelStore:
    return FunnelStore(ctx.catalog)


# -- shaping ----------------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float:
    return round(num / den, 4) if den else 0.0


def _seconds(ms: float | None) -> int | None:
    return None if ms is None else round(ms / 1000)


def steps_payload(funnel: SavedFunnel, fig: StepFigures | None) -> list[dict[str, Any]]:
    n = len(funnel.steps)
    counts = fig.counts if fig else (0,) * n
    out = []
    for i, step in enumerate(funnel.steps):
        out.append(
            {
                "count": counts[i],
                "avg_time": _seconds(fig.avg_ms[i]) if fig and i else None,
                "avg_time_from_start": _seconds(fig.avg_from_start_ms[i]) if fig and i else None,
                "step_conv_ratio": 1.0 if i == 0 else _ratio(counts[i], counts[i - 1]),
                "overall_conv_ratio": 1.0 if i == 0 else _ratio(counts[i], counts[0]),
                "goal": step.event,
                "event": step.event,
                "step_label": step.label or step.event,
            }
        )
    return out


def worst_step(counts: tuple[int, ...]) -> int:
    """Index of the step with the lowest step conversion (the highest drop-off), first on ties."""
    worst, worst_ratio = 1, 2.0
    for i in range(1, len(counts)):
        ratio = counts[i] / counts[i - 1] if counts[i - 1] else 0.0
        if ratio < worst_ratio:
            worst, worst_ratio = i, ratio
    return worst


def analysis(counts: tuple[int, ...]) -> dict[str, int]:
    return {"completion": counts[-1], "starting_amount": counts[0], "steps": len(counts), "worst": worst_step(counts)}


def _top_segments(figures: list[StepFigures], limit: int) -> list[str]:
    totals: dict[str, int] = {}
    for fig in figures:
        if fig.segment != OVERALL:
            totals[fig.segment] = totals.get(fig.segment, 0) + fig.counts[0]
    return top_segments(totals, limit)


# -- today's endpoints ------------------------------------------------------------------------------


def _saved(ctx: QueryContext, funnel_id: int) -> SavedFunnel:
    funnel = _store(ctx).get(ctx.project.id, funnel_id)
    if funnel is None:
        raise BadRequest(f"Invalid parameter: funnel_id (no funnel with id {funnel_id})")
    return funnel


def funnels(ctx: QueryContext) -> Any:
    """`/funnels`: today's form by `funnel_id`; the v2 form (`funnel` = JSON array of names) on the same path."""
    if get(ctx.params, "funnel_id") is None and get(ctx.params, "funnel") is not None:
        return legacy_funnels(ctx)
    funnel_id = parse_int(ctx.params, "funnel_id", None)
    if funnel_id is None:
        require(ctx.params, "funnel_id")
    assert funnel_id is not None
    funnel = _saved(ctx, funnel_id)
    req = FunnelRequest.read_dated(ctx.params, ctx.project, funnel)
    result = funnel_result(ctx.engine, ctx.project.id, req)
    # A segmented reply is asked for by the parameter, even when it is an empty expression.
    segmented = get(ctx.params, "on") is not None
    data: dict[str, Any] = {}
    for key in result.buckets:
        overall = result.overall(key)
        if segmented:
            entry = {OVERALL: steps_payload(funnel, overall)}
            for seg in result.segments:
                if (key, seg) in result.figures:
                    entry[seg] = steps_payload(funnel, result.figures[(key, seg)])
            data[key.isoformat()] = entry
        else:
            counts = overall.counts if overall else (0,) * len(funnel.steps)
            data[key.isoformat()] = {"steps": steps_payload(funnel, overall), "analysis": analysis(counts)}
    return {"meta": {"dates": [k.isoformat() for k in result.buckets]}, "data": data}


def funnels_list(ctx: QueryContext) -> list[dict[str, Any]]:
    return [{"funnel_id": f.id, "name": f.name} for f in _store(ctx).list(ctx.project.id)]


# -- legacy v2 (funnel names, weekly) ---------------------------------------------------------------


def _week_only(ctx: QueryContext) -> None:
    unit = require(ctx.params, "unit")
    if unit.strip().lower() != "week":
        raise BadRequest("Invalid parameter: unit")


def _weeks_back(ctx: QueryContext, default: int | None = None) -> DateRange:
    interval = parse_int(ctx.params, "interval", default, low=1, high=520)
    if interval is None:
        require(ctx.params, "interval")
    assert interval is not None
    return _back_from_now(ctx.project, Unit.WEEK, interval)


def _named(ctx: QueryContext, names: list[str]) -> list[SavedFunnel]:
    store = _store(ctx)
    found = []
    for name in names:
        funnel = store.by_name(ctx.project.id, name)
        if funnel is None:
            raise BadRequest("Invalid parameter: funnel")
        found.append(funnel)
    return found


def _funnel_names_param(ctx: QueryContext) -> list[str]:
    value = parse_json(ctx.params, "funnel")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequest("Invalid parameter: funnel")
    return value


def legacy_steps(funnel: SavedFunnel, fig: StepFigures | None) -> list[dict[str, Any]]:
    return [
        {k: step[k] for k in ("count", "goal", "overall_conv_ratio", "step_conv_ratio")}
        for step in steps_payload(funnel, fig)
    ]


def legacy_funnels(ctx: QueryContext) -> dict[str, Any]:
    """v2 `funnels`: per funnel name, weekly buckets over the last `interval` weeks; completion is a ratio."""
    _week_only(ctx)
    names = _funnel_names_param(ctx)
    span = _weeks_back(ctx)
    buckets = weekly(span)
    out: dict[str, Any] = {}
    for funnel in _named(ctx, names):
        result = funnel_result(
            ctx.engine, ctx.project.id, FunnelRequest.read(ctx.params, ctx.project, funnel, span, buckets)
        )
        keys = result.buckets
        data = {}
        for key in keys:
            fig = result.overall(key)
            counts = fig.counts if fig else (0,) * len(funnel.steps)
            data[key.isoformat()] = {
                "analysis": {
                    "completion": _ratio(counts[-1], counts[0]),
                    "starting_amount": counts[0],
                    "steps": len(counts),
                    "worst": worst_step(counts) + 1,
                },
                "steps": legacy_steps(funnel, fig),
            }
        out[funnel.name] = {"data": data, "meta": {"dates": [k.isoformat() for k in keys]}}
    return out


def funnel_names(ctx: QueryContext) -> list[str]:
    """v2 `funnels/names`: the saved funnels' names, oldest first."""
    return [f.name for f in _store(ctx).list(ctx.project.id)]


def funnel_dates(ctx: QueryContext) -> dict[str, list[str]]:
    """v2 `funnels/dates`: the weeks (of the last `limit`) in which each funnel had entries."""
    _week_only(ctx)
    names = _funnel_names_param(ctx)
    limit = parse_int(ctx.params, "limit", 100, low=1, high=520)
    assert limit is not None
    span = _back_from_now(ctx.project, Unit.WEEK, limit)
    buckets = weekly(span)
    out = {}
    for funnel in _named(ctx, names):
        result = funnel_result(
            ctx.engine, ctx.project.id, FunnelRequest.read(ctx.params, ctx.project, funnel, span, buckets)
        )
        figures = result.figures.values()
        out[funnel.name] = sorted(f.bucket.isoformat() for f in figures if f.segment == OVERALL and f.counts[0])
    return out


# -- App API: saved funnels -------------------------------------------------------------------------


def funnels_collection(ctx: AppContext) -> dict[str, Any]:
    store = _store(ctx)
    if ctx.method == "GET":
        return {"status": "ok", "results": [f.as_dict() for f in store.list(ctx.project.id)]}
    fields = definition_from_body(ctx.body, None)
    return {"status": "ok", "results": store.create(ctx.project.id, **fields).as_dict()}


def funnel_item(ctx: AppContext) -> dict[str, Any]:
    store = _store(ctx)
    try:
        funnel_id = int(ctx.path_params["funnel_id"])
    except ValueError as exc:
        raise NotFound("Funnel not found") from exc
    funnel = store.get(ctx.project.id, funnel_id)
    if funnel is None:
        raise NotFound(f"Funnel not found for id {funnel_id}")
    if ctx.method == "DELETE":
        store.delete(ctx.project.id, funnel_id)
        return {"status": "ok", "results": {"funnel_id": funnel_id, "deleted": True}}
    if ctx.method == "PATCH":
        funnel = store.update(updated(funnel, definition_from_body(ctx.body, funnel)))
    return {"status": "ok", "results": funnel.as_dict()}


# -- legacy v2 funnel properties ---------------------------------------------------------------------


@dataclass(frozen=True)
class StepPropertyNamesSpec(Spec[list[tuple[str, int]]]):
    """The property names seen on a funnel's step-1 events, most frequent first."""

    project_id: int
    start_ms: int
    end_ms: int
    step: FunnelStepSpec
    limit: int


def step_property_names(
    engine: Engine, project_id: int, funnel: SavedFunnel, span: DateRange, limit: int
) -> list[tuple[str, int]]:
    """The `limit` property names most often seen on the funnel's step-1 events in `span`, with counts."""
    step = step_specs(funnel.steps, span.timezone)[0]
    return engine.query(StepPropertyNamesSpec(project_id, span.start_ms, span.end_ms, step, limit))


def _single_funnel(ctx: QueryContext) -> SavedFunnel:
    name = require(ctx.params, "funnel")
    if name.lstrip().startswith('"'):
        parsed = parse_json(ctx.params, "funnel")
        if not isinstance(parsed, str):
            raise BadRequest("Invalid parameter: funnel")
        name = parsed
    return _named(ctx, [name])[0]


def funnel_properties(ctx: QueryContext) -> dict[str, Any]:
    """v2 `funnels/properties`: per week, the funnel split by a property of the step-1 event; for each value,
    `steps[k].count` = users whose furthest step was k (1-based), `start`/`end` = the first/last such k."""
    _week_only(ctx)
    funnel = _single_funnel(ctx)
    prop = require(ctx.params, "name")
    limit = parse_int(ctx.params, "limit", 10, low=1, high=10_000)
    assert limit is not None
    span = _weeks_back(ctx)
    buckets = weekly(span)
    on = 'properties["' + prop.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    req = FunnelRequest.read(ctx.params, ctx.project, funnel, span, buckets)
    req = replace(req, on=EventExpr.parse(on, timezone=ctx.project.timezone))
    result = funnel_result(ctx.engine, ctx.project.id, req)
    out: dict[str, Any] = {}
    for key in result.buckets:
        week = [f for f in result.figures.values() if f.bucket == key and f.segment != OVERALL]
        top = _top_segments(week, limit)
        values: dict[str, Any] = {}
        for fig in week:
            if fig.segment not in top:
                continue
            furthest = {
                str(k + 1): {"count": fig.counts[k] - (fig.counts[k + 1] if k + 1 < len(fig.counts) else 0)}
                for k in range(len(fig.counts))
            }
            furthest = {k: v for k, v in furthest.items() if v["count"]}
            numbers = [int(k) for k in furthest] or [1]
            values[fig.segment] = {
                "end": max(numbers),
                "start": min(numbers),
                "steps": furthest,
                "total_visitors": fig.counts[0],
            }
        out[key.isoformat()] = {
            "meta": {"name": prop, "steps": len(funnel.steps), "values": top},
            "values": values,
        }
    return out


def funnel_property_names(ctx: QueryContext) -> dict[str, Any]:
    """v2 `funnels/properties/names`: the top property names of the funnel's step-1 events."""
    _week_only(ctx)
    funnel = _single_funnel(ctx)
    limit = parse_int(ctx.params, "limit", 20, low=1, high=10_000)
    assert limit is not None
    span = _weeks_back(ctx)
    rows = step_property_names(ctx.engine, ctx.project.id, funnel, span, limit)
    start = datetime.fromtimestamp(span.start_ms / 1000, ZoneInfo(span.timezone)).strftime("%Y-%m-%d %H:%M:%S")
    return {
        funnel.name: {
            "meta": {"date": start},
            "names": [{"count": n, "name": name, "property": name} for name, n in rows],
        }
    }
