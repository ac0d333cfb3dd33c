"""Segmentation (https://developer.mixpanel.com/reference/segmentation-query and the numeric, sum and average pages beside it): event counts per time bucket, optionally split by an `on`
expression; `/segmentation/numeric` (ranges of a number), `/sum`, `/average` and `/multiseg`.

The shared machinery lives here too, because `/events` and `/events/properties` are segmentation with
other keys: a `Timeline` (the buckets, labelled in the project's timezone) and a `SeriesSpec` the engine
answers with one row per (key, inner key, bucket start). Rules and every [I] choice:
docs/query-segmentation.md.

Layers, top to bottom: the wire functions at the end (`segmentation(ctx)` ...) read a typed request once
(`SegmentationRequest.read`), run the analysis (`segmentation_series(engine, project_id, request)`) and
shape its typed result into Mixpanel's reply; the analysis asks the engine a `SeriesSpec` of parsed
expressions and `Buckets`, and labels the bucket starts it gets back.

    request = SegmentationRequest.read({"event": "Purchase", "from_date": "2024-01-01", "to_date": "2024-01-07",
                                        "on": 'properties["plan"]'}, project)
    result = segmentation_series(engine, project.id, request)      # result.values: {plan: {label: count}}
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from mixhouse.domain.calendar import (
    SUB_DAY_UNITS,
    Buckets,
    as_datetime,
    bucket_starts,
    day_start_ms,
    local_starts,
    sub_day_count,
    unit_start,
)
from mixhouse.domain.limits import check_deadline, max_reply_values
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import CsvReply, QueryContext
from mixhouse.domain.query.params import (
    CountType,
    Params,
    Unit,
    get,
    parse_date_range,
    parse_enum,
    parse_int,
    parse_unit,
    require,
)
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest
from mixhouse.expr import EventExpr

DEFAULT_LIMIT = 60
MAX_LIMIT = 10_000
MAX_BUCKETS = 50_000
DEFAULT_NUMERIC_BUCKETS = 10
MAX_NUMERIC_BUCKETS = 1_000


LABEL_FORMATS: dict[Unit, str] = {
    Unit.MINUTE: "%Y-%m-%d %H:%M:00",
    Unit.HOUR: "%Y-%m-%d %H:00:00",
    Unit.DAY: "%Y-%m-%d",
    Unit.WEEK: "%Y-%m-%d",
    Unit.MONTH: "%Y-%m-%d",
}


def bucket_labels(starts: Sequence[datetime], unit: Unit) -> tuple[str, ...]:
    """The LABEL_FORMATS label of each bucket start (starts are truncated to their unit). `isoformat` writes
    the same text several times faster than `strftime` (a month of minutes is 43,200 labels); years before
    1000, which `strftime` leaves unpadded, take the slow path."""
    if unit in SUB_DAY_UNITS:
        fmt = LABEL_FORMATS[unit]
        return tuple(s.isoformat(" ") if s.year >= 1000 else s.strftime(fmt) for s in starts)
    return tuple(s.date().isoformat() for s in starts)


class Measure(StrEnum):
    """What a bucket holds: a count of the given CountType, or the sum/average of a number."""

    COUNT = "count"
    SUM = "sum"
    AVERAGE = "average"


# -- the time axis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Buckets of `unit` (or of `bucket_days` days from `anchor`) over [start_ms, end_ms): their naive local
    starts in chronological order and, beside them, their labels (LABEL_FORMATS in `timezone`)."""

    start_ms: int
    end_ms: int
    timezone: str
    unit: Unit
    starts: tuple[datetime, ...]
    bucket_days: int | None = None
    anchor: date | None = None
    labels: tuple[str, ...] = field(init=False)
    label_of: dict[datetime, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Formatted once per bucket, never per row; the engine answers with starts.
        labels = bucket_labels(self.starts, Unit.DAY if self.bucket_days else self.unit)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "label_of", dict(zip(self.starts, labels, strict=True)))

    @property
    def buckets(self) -> Buckets:
        if self.bucket_days and self.anchor is not None:
            return Buckets.every(self.start_ms, self.end_ms, self.timezone, self.bucket_days, self.anchor)
        return Buckets.of(self.start_ms, self.end_ms, self.timezone, self.unit)


def _sub_day_starts(start_ms: int, end_ms: int, unit: Unit, timezone: str) -> list[datetime]:
    """Local hour/minute starts of the instants in the span (see calendar.local_starts)."""
    if sub_day_count(start_ms, end_ms, unit) > MAX_BUCKETS:
        raise BadRequest(f"Invalid parameter: unit (more than {MAX_BUCKETS} {unit.value} buckets in the range)")
    return local_starts(start_ms, end_ms, unit, timezone)


def _day_starts(first: date, last: date, unit: Unit, bucket_days: int | None) -> list[datetime]:
    starts = bucket_starts(first, last, unit, every_days=bucket_days)
    if len(starts) > MAX_BUCKETS:
        raise BadRequest(f"Invalid parameter: unit (more than {MAX_BUCKETS} buckets in the range)")
    return [as_datetime(d) for d in starts]


def parse_timeline(params: Params, project: Project, *, units: Sequence[Unit] = tuple(Unit)) -> Timeline:
    """`from_date`/`to_date` (inclusive days) with `unit`, where `interval` is the number of days per
    bucket; or, without dates, v2's `unit` + `interval` = the last `interval` units up to the current one."""
    unit = parse_unit(params, units)
    tz = project.timezone
    has_dates = get(params, "from_date") is not None or get(params, "to_date") is not None
    interval = parse_int(params, "interval", low=1, high=MAX_BUCKETS)
    if not has_dates and interval is not None and unit in SUB_DAY_UNITS:
        step = timedelta(hours=1) if unit is Unit.HOUR else timedelta(minutes=1)
        current = unit_start(datetime.now(ZoneInfo(tz)), unit)
        end_ms = int((current + step).timestamp() * 1000)
        start_ms = end_ms - interval * int(step.total_seconds() * 1000)
        return Timeline(start_ms, end_ms, tz, unit, tuple(_sub_day_starts(start_ms, end_ms, unit, tz)))
    span = parse_date_range(params, project, default_unit=unit)
    bucket_days = interval if has_dates and interval is not None and interval > 1 else None
    first = span.first
    if unit in SUB_DAY_UNITS and bucket_days is None:
        starts = _sub_day_starts(span.start_ms, span.end_ms, unit, tz)
    else:
        starts = _day_starts(first, span.last, unit, bucket_days)
    return Timeline(
        day_start_ms(first, tz),
        span.end_ms,
        tz,
        unit,
        tuple(starts),
        bucket_days=bucket_days,
        anchor=first if bucket_days else None,
    )


# -- the engine's question ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericBuckets:
    """`floor((x - lower) / width)`, the last bucket closed so that the maximum falls inside it."""

    number: EventExpr
    lower: float
    width: float
    count: int


@dataclass(frozen=True)
class SeriesSpec(Spec["list[SeriesRow]"]):
    """One row per (key, inner key, bucket start) with the bucket's value.

    Keys are the segment keys of `key` (a list fans out, an empty list or an undefined value drops the
    event); without `key` the key is the event name. `limit` keeps the top keys by their total over the
    buckets, ranked as calendar.ranking_key ranks (and, with `inner`, the top inner keys within each key).
    The engine joins the user's profile when an expression reads `user[...]`."""

    project_id: int
    events: tuple[str, ...] | None
    buckets: Buckets
    count_type: CountType = CountType.GENERAL
    measure: Measure = Measure.COUNT
    where: EventExpr | None = None
    key: EventExpr | None = None
    inner: EventExpr | None = None
    numeric: NumericBuckets | None = None  # replaces key: the key is the bucket index
    value: EventExpr | None = None  # the number summed or averaged (not a number: 0) for SUM/AVERAGE
    values: tuple[str, ...] | None = None  # keep only these keys
    limit: int | None = None

    def expressions(self) -> tuple[EventExpr | None, ...]:
        number = self.numeric.number if self.numeric is not None else None
        return (self.where, self.key, self.inner, self.value, number)


@dataclass(frozen=True)
class SeriesRow:
    key: str
    inner: str | None
    start: datetime  # the bucket's naive local start, a key of Timeline.label_of
    value: float


@dataclass(frozen=True)
class NumberRangeSpec(Spec[tuple[float, float] | None]):
    """Minimum and maximum of a number expression over the matching events (for numeric bucketing)."""

    project_id: int
    events: tuple[str, ...] | None
    start_ms: int
    end_ms: int
    number: EventExpr
    where: EventExpr | None


def parse_expression(params: Params, name: str, timezone: str) -> EventExpr | None:
    """The expression parameter `name`, parsed and checked (a 400 with a caret), or None when absent."""
    text = get(params, name)
    return EventExpr.parse(text, timezone=timezone) if text else None


def require_expression(params: Params, name: str, timezone: str) -> EventExpr:
    return EventExpr.parse(require(params, name), timezone=timezone)


# -- rendering ----------------------------------------------------------------------------------------


def render_value(value: float, count_type: CountType = CountType.GENERAL) -> int | float:
    """Counts are integers; averages and sums stay floats unless whole (a sum of 4.0 is `4`)."""
    if count_type is CountType.AVERAGE:
        return float(value)
    return int(value) if float(value).is_integer() else float(value)


def capped_limit(limit: int | None, timeline: Timeline) -> int | None:
    """The limit the engine gets: one segment more than a reply of this many buckets can hold, so that an
    answer too large to send is known from at most that many segments' rows, never all of them."""
    if limit is None:
        return None
    return min(limit, max_reply_values() // max(1, len(timeline.labels)) + 1)


def check_reply_size(series: int, timeline: Timeline) -> None:
    """Mixpanel caps segments (`limit` ≤ 10,000) and buckets; their product can still be huge (10,000
    segments x 50,000 minutes). Past the cap: a clear 400 instead of building the reply."""
    check_deadline()
    values = series * len(timeline.labels)
    most = max_reply_values()
    if values > most:
        raise BadRequest(
            f"Invalid parameter: limit (the reply would hold {series} segments x {len(timeline.labels)}"
            f" {timeline.unit.value} buckets = {values} values, more than {most}; use a larger unit, a shorter"
            " date range or a smaller limit)"
        )


def zero_filled(labels: Sequence[str], count_type: CountType = CountType.GENERAL) -> dict[str, int | float]:
    zero: int | float = 0.0 if count_type is CountType.AVERAGE else 0
    return dict.fromkeys(labels, zero)


def series_values(
    rows: Sequence[SeriesRow], timeline: Timeline, count_type: CountType, keys: Sequence[str] = ()
) -> dict[str, dict[str, int | float]]:
    """{key: {label: value}}, zero-filled; `keys` come first (present even without data), then the
    rows' keys in the engine's order (by total, descending)."""
    check_reply_size(len(set(keys) | {row.key for row in rows}), timeline)
    values: dict[str, dict[str, int | float]] = {k: zero_filled(timeline.labels, count_type) for k in keys}
    label_of = timeline.label_of
    for n, row in enumerate(rows):
        if n % 1024 == 0:
            check_deadline()
        series = values.get(row.key)
        if series is None:  # not setdefault: its argument, a zero-filled series, would be built per row
            series = values[row.key] = zero_filled(timeline.labels, count_type)
        label = label_of.get(row.start)
        if label is not None:
            series[label] = render_value(row.value, count_type)
    return values


def segmentation_payload(values: dict[str, Any], timeline: Timeline) -> dict[str, Any]:
    return {"data": {"series": list(timeline.labels), "values": values}, "legend_size": len(values)}


def _csv_cell(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def segments_csv(header: Sequence[str], values: dict[str, Any], labels: Sequence[str], depth: int = 1) -> CsvReply:
    """One row per segment (per outer and inner segment with `depth` 2), one column per bucket label."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, *labels])
    for key, series in values.items():
        if depth == 2:
            for inner, inner_series in series.items():
                writer.writerow([key, inner, *(_csv_cell(inner_series[label]) for label in labels)])
        else:
            writer.writerow([key, *(_csv_cell(series[label]) for label in labels)])
    return CsvReply(out.getvalue())


def results_csv(results: dict[str, int | float]) -> CsvReply:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "value"])
    for label, value in results.items():
        writer.writerow([label, _csv_cell(value)])
    return CsvReply(out.getvalue())


def wants_csv(params: Params) -> bool:
    fmt = (get(params, "format") or "json").strip().lower()
    if fmt not in ("json", "csv"):
        raise BadRequest("Invalid parameter: format")
    return fmt == "csv"


# -- requests: each endpoint's parameters, read once at the edge in the order Mixpanel checks them -------


def _limit(params: Params, default: int | None = DEFAULT_LIMIT) -> int | None:
    return parse_int(params, "limit", default, low=1, high=MAX_LIMIT)


def _event(params: Params) -> tuple[str, ...]:
    return (require(params, "event"),)


@dataclass(frozen=True)
class SegmentationRequest:
    """`/segmentation`: counts of one event per bucket, split by `on` when given."""

    events: tuple[str, ...]
    timeline: Timeline
    count_type: CountType
    where: EventExpr | None
    on: EventExpr | None
    limit: int | None  # checked always, used only with `on`
    csv: bool

    @classmethod
    def read(cls, params: Params, project: Project) -> SegmentationRequest:
        events = _event(params)
        timeline = parse_timeline(params, project)
        count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
        csv_out = wants_csv(params)
        where = parse_expression(params, "where", project.timezone)
        on = parse_expression(params, "on", project.timezone)
        return cls(events, timeline, count_type, where, on, _limit(params), csv_out)


@dataclass(frozen=True)
class MultisegRequest:
    """`/segmentation/multiseg`: counts per `outer` and, within each, per `inner` segment."""

    events: tuple[str, ...]
    timeline: Timeline
    count_type: CountType
    where: EventExpr | None
    outer: EventExpr
    inner: EventExpr
    limit: int | None
    csv: bool

    @classmethod
    def read(cls, params: Params, project: Project) -> MultisegRequest:
        events = _event(params)
        outer_text, inner_text = require(params, "outer"), require(params, "inner")
        timeline = parse_timeline(params, project)
        count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
        csv_out = wants_csv(params)
        where = parse_expression(params, "where", project.timezone)
        outer = EventExpr.parse(outer_text, timezone=project.timezone)
        inner = EventExpr.parse(inner_text, timezone=project.timezone)
        return cls(events, timeline, count_type, where, outer, inner, _limit(params), csv_out)


@dataclass(frozen=True)
class NumericRequest:
    """`/segmentation/numeric`: counts per range of the number `on`, in about `buckets` ranges."""

    events: tuple[str, ...]
    timeline: Timeline
    count_type: CountType
    buckets: int
    where: EventExpr | None
    on: EventExpr
    csv: bool

    @classmethod
    def read(cls, params: Params, project: Project) -> NumericRequest:
        events = _event(params)
        on_text = require(params, "on")
        timeline = parse_timeline(params, project)
        count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
        buckets = parse_int(params, "buckets", DEFAULT_NUMERIC_BUCKETS, low=1, high=MAX_NUMERIC_BUCKETS)
        assert buckets is not None
        csv_out = wants_csv(params)
        where = parse_expression(params, "where", project.timezone)
        on = EventExpr.parse(on_text, timezone=project.timezone)
        return cls(events, timeline, count_type, buckets, where, on, csv_out)


@dataclass(frozen=True)
class MeasureRequest:
    """`/segmentation/sum` and `/segmentation/average`: the sum or average of the number `on` per bucket."""

    events: tuple[str, ...]
    timeline: Timeline
    measure: Measure
    where: EventExpr | None
    on: EventExpr
    csv: bool

    @classmethod
    def read(cls, params: Params, project: Project, measure: Measure) -> MeasureRequest:
        events = _event(params)
        on_text = require(params, "on")
        timeline = parse_timeline(params, project)
        parse_enum(params, "type", CountType, CountType.GENERAL)  # accepted; a sum is a sum
        csv_out = wants_csv(params)
        where = parse_expression(params, "where", project.timezone)
        on = EventExpr.parse(on_text, timezone=project.timezone)
        return cls(events, timeline, measure, where, on, csv_out)


# -- analyses: typed requests in, typed results out ----------------------------------------------------

Series = dict[str, dict[str, int | float]]


@dataclass(frozen=True)
class SeriesResult:
    """Values per segment and bucket label (zero-filled), segments in rank order; with `inner`, one level
    deeper (`Series` per outer segment)."""

    timeline: Timeline
    values: dict[str, Any]


def segmentation_series(engine: Engine, project_id: int, req: SegmentationRequest) -> SeriesResult:
    timeline, on = req.timeline, req.on
    spec = SeriesSpec(
        project_id,
        req.events,
        timeline.buckets,
        req.count_type,
        where=req.where,
        key=on,
        limit=capped_limit(req.limit, timeline) if on else None,
    )
    rows = engine.query(spec)
    # Without `on` the one series is the event's, zero-filled even when it never happened.
    return SeriesResult(timeline, series_values(rows, timeline, req.count_type, keys=() if on else req.events))


def multiseg_series(engine: Engine, project_id: int, req: MultisegRequest) -> SeriesResult:
    timeline, count_type = req.timeline, req.count_type
    spec = SeriesSpec(
        project_id,
        req.events,
        timeline.buckets,
        count_type,
        where=req.where,
        key=req.outer,
        inner=req.inner,
        limit=capped_limit(req.limit, timeline),
    )
    rows = engine.query(spec)
    check_reply_size(len({(row.key, row.inner) for row in rows}), timeline)
    values: dict[str, Series] = {}
    label_of = timeline.label_of
    for n, row in enumerate(rows):
        if n % 1024 == 0:
            check_deadline()
        inner_values = values.setdefault(row.key, {})
        series = inner_values.get(row.inner or "")
        if series is None:
            series = inner_values[row.inner or ""] = zero_filled(timeline.labels, count_type)
        label = label_of.get(row.start)
        if label is not None:
            series[label] = render_value(row.value, count_type)
    return SeriesResult(timeline, values)


def _nice_width(span: float, buckets: int) -> float:
    """The smallest 1, 2 or 5 times a power of ten that covers `span` in `buckets` buckets."""
    if not math.isfinite(span):
        raise BadRequest("Invalid parameter: on (the values are too far apart to bucket)")
    raw = span / buckets
    if raw <= 0:  # equal values, or a span so small it underflows
        return 1.0 if span <= 0 else span
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if factor * power >= raw * (1 - 1e-12):
            return factor * power
    return 10.0 * power


def _number_text(value: float) -> str:
    """`2000` -> `2,000`; `2.5` -> `2.5`; `-1250.5` -> `-1,250.5` (thousands separators, shortest form)."""
    value = round(value, 10) + 0.0  # absorbs float noise from lower + k*width and turns -0 into 0
    if value.is_integer():
        return f"{int(value):,}"
    text = repr(value)
    if "e" in text:
        return text
    whole, _, fraction = text.lstrip("-").partition(".")
    return f"{'-' if value < 0 else ''}{int(whole):,}.{fraction}"


def bucket_label(lower: float, width: float, index: int) -> str:
    start = lower + index * width
    return f"{_number_text(start)} - {_number_text(start + width)}"


def numeric_buckets(lo: float, hi: float, buckets: int, number: EventExpr) -> NumericBuckets:
    width = _nice_width(hi - lo, buckets)
    lower = math.floor(lo / width) * width
    # A maximum on the top boundary belongs to the last bucket (the engine clamps the index).
    count = max(1, math.ceil((hi - lower) / width - 1e-9))
    return NumericBuckets(number, lower, width, count)


def numeric_series(engine: Engine, project_id: int, req: NumericRequest) -> SeriesResult:
    timeline, count_type, events = req.timeline, req.count_type, req.events
    span = engine.query(NumberRangeSpec(project_id, events, timeline.start_ms, timeline.end_ms, req.on, req.where))
    values: Series = {}
    if span is not None:
        bucketing = numeric_buckets(span[0], span[1], req.buckets, req.on)
        spec = SeriesSpec(project_id, events, timeline.buckets, count_type, where=req.where, numeric=bucketing)
        rows = engine.query(spec)
        by_index: dict[int, list[SeriesRow]] = {}
        for row in rows:
            by_index.setdefault(int(row.key), []).append(row)
        check_reply_size(len(by_index), timeline)
        label_of = timeline.label_of
        for index in sorted(by_index):  # ranges in ascending order
            label = bucket_label(bucketing.lower, bucketing.width, index)
            values[label] = zero_filled(timeline.labels, count_type)
            for row in by_index[index]:
                bucket = label_of.get(row.start)
                if bucket is not None:
                    values[label][bucket] = render_value(row.value, count_type)
    return SeriesResult(timeline, values)


def measure_results(engine: Engine, project_id: int, req: MeasureRequest) -> dict[str, int | float]:
    """Per-bucket sum or average of `on`; a value that is not a number counts as 0 (https://developer.mixpanel.com/reference/segmentation-sum-query)."""
    timeline = req.timeline
    spec = SeriesSpec(project_id, req.events, timeline.buckets, measure=req.measure, where=req.where, value=req.on)
    rows = engine.query(spec)
    as_float = req.measure is Measure.AVERAGE
    results: dict[str, int | float] = dict.fromkeys(timeline.labels, 0.0 if as_float else 0)
    label_of = timeline.label_of
    for row in rows:
        label = label_of.get(row.start)
        if label is not None:
            results[label] = float(row.value) if as_float else render_value(row.value)
    return results


# -- the Mixpanel wire: read the request, run the analysis, shape the reply -----------------------------


def segmentation(ctx: QueryContext) -> Any:
    req = SegmentationRequest.read(ctx.params, ctx.project)
    result = segmentation_series(ctx.engine, ctx.project.id, req)
    if req.csv:
        return segments_csv([req.on.text if req.on else "event"], result.values, result.timeline.labels)
    return segmentation_payload(result.values, result.timeline)


def multiseg(ctx: QueryContext) -> Any:
    req = MultisegRequest.read(ctx.params, ctx.project)
    result = multiseg_series(ctx.engine, ctx.project.id, req)
    if req.csv:
        return segments_csv([req.outer.text, req.inner.text], result.values, result.timeline.labels, depth=2)
    return segmentation_payload(result.values, result.timeline)


def numeric(ctx: QueryContext) -> Any:
    req = NumericRequest.read(ctx.params, ctx.project)
    result = numeric_series(ctx.engine, ctx.project.id, req)
    if req.csv:
        return segments_csv([req.on.text], result.values, result.timeline.labels)
    return segmentation_payload(result.values, result.timeline)


def segmentation_sum(ctx: QueryContext) -> Any:
    req = MeasureRequest.read(ctx.params, ctx.project, Measure.SUM)
    results = measure_results(ctx.engine, ctx.project.id, req)
    if req.csv:
        return results_csv(results)
    return {"status": "ok", "computed_at": datetime.now(UTC).isoformat(), "results": results}


def segmentation_average(ctx: QueryContext) -> Any:
    req = MeasureRequest.read(ctx.params, ctx.project, Measure.AVERAGE)
    results = measure_results(ctx.engine, ctx.project.id, req)
    if req.csv:
        return results_csv(results)
    return {"results": results, "status": "ok"}
