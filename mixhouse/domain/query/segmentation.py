"""Segmentation (https://developer.mixpanel.com/reference/segmentation-query and the numeric, sum and average pages beside it): event counts per time bucket, optionally split by an `on`
expression; `/segmentation/numeric` (ranges of a number), `/sum`, `/average` and `/multiseg`.

The shared machinery lives here too, because `/events` and `/events/properties` are segmentation with
other keys: a `Timeline` (the buckets, labelled in the project's timezone) and a `SeriesSpec` the engine
answers with one row per (key, inner key, bucket). Rules and every [I] choice: docs/query-segmentation.md.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from mixhouse.domain.calendar import bucket_starts, day_start_ms, local_starts, sub_day_count, unit_start
from mixhouse.domain.limits import check_deadline
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
    require,
)
from mixhouse.domain.spec import Spec
from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_number, compile_segment_key
from mixhouse.errors import BadRequest
from mixhouse.expr import ExpressionScopeError, ast, parse

DEFAULT_LIMIT = 60
MAX_LIMIT = 10_000
MAX_BUCKETS = 50_000
DEFAULT_NUMERIC_BUCKETS = 10
MAX_NUMERIC_BUCKETS = 1_000
DEFAULT_MAX_REPLY_VALUES = 1_000_000


def max_reply_values() -> int:
    """MIXHOUSE_MAX_REPLY_VALUES: the most values (segments x buckets) one reply may hold (~25 MB of JSON)."""
    raw = os.environ.get("MIXHOUSE_MAX_REPLY_VALUES", "").strip()
    return int(raw) if raw else DEFAULT_MAX_REPLY_VALUES


PROFILE_ALIAS = "u"  # the user's profile, joined only when a `where`/`on` reads user["..."]

LABEL_FORMATS: dict[Unit, str] = {
    Unit.MINUTE: "%Y-%m-%d %H:%M:00",
    Unit.HOUR: "%Y-%m-%d %H:00:00",
    Unit.DAY: "%Y-%m-%d",
    Unit.WEEK: "%Y-%m-%d",
    Unit.MONTH: "%Y-%m-%d",
}


class Measure(StrEnum):
    """What a bucket holds: a count of the given CountType, or the sum/average of a number."""

    COUNT = "count"
    SUM = "sum"
    AVERAGE = "average"


# -- the time axis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Buckets of `unit` (or of `bucket_days` days from `anchor`) over [start_ms, end_ms), their labels in
    chronological order. Labels are local times in `timezone`, formatted with LABEL_FORMATS."""

    start_ms: int
    end_ms: int
    timezone: str
    unit: Unit
    labels: tuple[str, ...]
    bucket_days: int | None = None
    anchor: date | None = None

    @property
    def label_format(self) -> str:
        return LABEL_FORMATS[Unit.DAY] if self.bucket_days else LABEL_FORMATS[self.unit]


def _sub_day_labels(start_ms: int, end_ms: int, unit: Unit, timezone: str) -> list[str]:
    """Local hour/minute labels of the instants in the span (see calendar.local_starts)."""
    if sub_day_count(start_ms, end_ms, unit) > MAX_BUCKETS:
        raise BadRequest(f"Invalid parameter: unit (more than {MAX_BUCKETS} {unit.value} buckets in the range)")
    fmt = LABEL_FORMATS[unit]
    return [start.strftime(fmt) for start in local_starts(start_ms, end_ms, unit, timezone)]


def _day_labels(first: date, last: date, unit: Unit, bucket_days: int | None) -> list[str]:
    starts = bucket_starts(first, last, unit, every_days=bucket_days)
    if len(starts) > MAX_BUCKETS:
        raise BadRequest(f"Invalid parameter: unit (more than {MAX_BUCKETS} buckets in the range)")
    return [d.isoformat() for d in starts]


def parse_timeline(params: Params, project: Project, *, units: Sequence[Unit] = tuple(Unit)) -> Timeline:
    """`from_date`/`to_date` (inclusive days) with `unit`, where `interval` is the number of days per
    bucket; or, without dates, v2's `unit` + `interval` = the last `interval` units up to the current one."""
    unit = parse_enum(params, "unit", Unit, Unit.DAY)
    if unit not in units:
        raise BadRequest("Invalid parameter: unit")
    tz = project.timezone
    has_dates = get(params, "from_date") is not None or get(params, "to_date") is not None
    interval = parse_int(params, "interval", low=1, high=MAX_BUCKETS)
    if not has_dates and interval is not None and unit in (Unit.HOUR, Unit.MINUTE):
        step = timedelta(hours=1) if unit is Unit.HOUR else timedelta(minutes=1)
        current = unit_start(datetime.now(ZoneInfo(tz)), unit)
        end_ms = int((current + step).timestamp() * 1000)
        start_ms = end_ms - interval * int(step.total_seconds() * 1000)
        labels = _sub_day_labels(start_ms, end_ms, unit, tz)
        return Timeline(start_ms, end_ms, tz, unit, tuple(labels))
    span = parse_date_range(params, project, default_unit=unit)
    bucket_days = interval if has_dates and interval is not None and interval > 1 else None
    first = span.first
    if unit in (Unit.HOUR, Unit.MINUTE) and bucket_days is None:
        labels = _sub_day_labels(span.start_ms, span.end_ms, unit, tz)
    else:
        labels = _day_labels(first, span.last, unit, bucket_days)
    return Timeline(
        day_start_ms(first, tz),
        span.end_ms,
        tz,
        unit,
        tuple(labels),
        bucket_days=bucket_days,
        anchor=first if bucket_days else None,
    )


# -- the engine's question ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericBuckets:
    """`floor((x - lower) / width)`, the last bucket closed so that the maximum falls inside it."""

    number_sql: str
    lower: float
    width: float
    count: int


@dataclass(frozen=True)
class SeriesSpec(Spec["list[SeriesRow]"]):
    """One row per (key, inner key, bucket label) with the bucket's value.

    Keys are VARCHAR[] SQL over alias `e` (unnested: a list fans out, an empty list drops the event);
    without `key_sql` the key is the event name. `limit` keeps the top keys by their total over the
    timeline (and, with `inner_sql`, the top inner keys within each key)."""

    project_id: int
    events: tuple[str, ...] | None
    timeline: Timeline
    count_type: CountType = CountType.GENERAL
    measure: Measure = Measure.COUNT
    where_sql: str | None = None
    key_sql: str | None = None
    inner_sql: str | None = None
    numeric: NumericBuckets | None = None  # replaces key_sql: the key is the bucket index
    value_sql: str | None = None  # DOUBLE (NULL when not a number) for SUM/AVERAGE
    values: tuple[str, ...] | None = None  # keep only these keys
    limit: int | None = None
    join_profiles: bool = False  # alias u: the profile of e.distinct_id


@dataclass(frozen=True)
class SeriesRow:
    key: str
    inner: str | None
    label: str
    value: float


@dataclass(frozen=True)
class NumberRangeSpec(Spec[tuple[float, float] | None]):
    """Minimum and maximum of a number expression over the matching events (for numeric bucketing)."""

    project_id: int
    events: tuple[str, ...] | None
    start_ms: int
    end_ms: int
    number_sql: str
    where_sql: str | None
    join_profiles: bool


# -- expressions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    sql: str
    needs_profiles: bool


def _compile(kind: str, text: str, timezone: str) -> Compiled:
    """Compile against the event scope; a `user[...]` reference retries with the profile joined."""
    tree = parse(text)
    compilers = {"filter": compile_filter, "key": compile_segment_key, "number": compile_number}
    compiler = compilers[kind]
    try:
        return Compiled(compiler(tree, Scope.events("e", timezone=timezone)), False)
    except ExpressionScopeError:
        scope = Scope.events("e", timezone=timezone, user_properties_sql=f"{PROFILE_ALIAS}.properties")
        return Compiled(compiler(tree, scope), True)


def compile_where(params: Params, timezone: str) -> Compiled | None:
    text = get(params, "where")
    return _compile("filter", text, timezone) if text else None


def property_key_sql(name: str, timezone: str) -> str:
    """Segment keys of `properties[name]`, built as a tree so that no name needs quoting."""
    return compile_segment_key(ast.Property(source="properties", name=name), Scope.events("e", timezone=timezone))


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
    for n, row in enumerate(rows):
        if n % 1024 == 0:
            check_deadline()
        series = values.get(row.key)
        if series is None:  # not setdefault: its argument, a zero-filled series, would be built per row
            series = values[row.key] = zero_filled(timeline.labels, count_type)
        if row.label in series:
            series[row.label] = render_value(row.value, count_type)
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


# -- endpoints ----------------------------------------------------------------------------------------


def _limit(params: Params, default: int | None = DEFAULT_LIMIT) -> int | None:
    return parse_int(params, "limit", default, low=1, high=MAX_LIMIT)


def _event(params: Params) -> tuple[str, ...]:
    return (require(params, "event"),)


def segmentation(ctx: QueryContext) -> Any:
    params, project = ctx.params, ctx.project
    events = _event(params)
    timeline = parse_timeline(params, project)
    count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
    csv_out = wants_csv(params)
    where = compile_where(params, project.timezone)
    on_text = get(params, "on")
    on = _compile("key", on_text, project.timezone) if on_text else None
    limit = _limit(params)  # checked always, used only with `on`
    spec = SeriesSpec(
        project.id,
        events,
        timeline,
        count_type,
        where_sql=where.sql if where else None,
        key_sql=on.sql if on else None,
        limit=capped_limit(limit, timeline) if on else None,
        join_profiles=bool((where and where.needs_profiles) or (on and on.needs_profiles)),
    )
    rows: list[SeriesRow] = ctx.engine.query(spec)
    # Without `on` the one series is the event's, zero-filled even when it never happened.
    values = series_values(rows, timeline, count_type, keys=() if on else events)
    if csv_out:
        return segments_csv([on_text or "event"], values, timeline.labels)
    return segmentation_payload(values, timeline)


def multiseg(ctx: QueryContext) -> Any:
    params, project = ctx.params, ctx.project
    events = _event(params)
    outer_text, inner_text = require(params, "outer"), require(params, "inner")
    timeline = parse_timeline(params, project)
    count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
    csv_out = wants_csv(params)
    where = compile_where(params, project.timezone)
    outer = _compile("key", outer_text, project.timezone)
    inner = _compile("key", inner_text, project.timezone)
    spec = SeriesSpec(
        project.id,
        events,
        timeline,
        count_type,
        where_sql=where.sql if where else None,
        key_sql=outer.sql,
        inner_sql=inner.sql,
        limit=capped_limit(_limit(params), timeline),
        join_profiles=bool((where and where.needs_profiles) or outer.needs_profiles or inner.needs_profiles),
    )
    rows: list[SeriesRow] = ctx.engine.query(spec)
    check_reply_size(len({(row.key, row.inner) for row in rows}), timeline)
    values: dict[str, dict[str, dict[str, int | float]]] = {}
    for n, row in enumerate(rows):
        if n % 1024 == 0:
            check_deadline()
        inner_values = values.setdefault(row.key, {})
        series = inner_values.get(row.inner or "")
        if series is None:
            series = inner_values[row.inner or ""] = zero_filled(timeline.labels, count_type)
        if row.label in series:
            series[row.label] = render_value(row.value, count_type)
    if csv_out:
        return segments_csv([outer_text, inner_text], values, timeline.labels, depth=2)
    return segmentation_payload(values, timeline)


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


def numeric_buckets(lo: float, hi: float, buckets: int, number_sql: str) -> NumericBuckets:
    width = _nice_width(hi - lo, buckets)
    lower = math.floor(lo / width) * width
    # A maximum on the top boundary belongs to the last bucket (the engine clamps the index).
    count = max(1, math.ceil((hi - lower) / width - 1e-9))
    return NumericBuckets(number_sql, lower, width, count)


def numeric(ctx: QueryContext) -> Any:
    params, project = ctx.params, ctx.project
    events = _event(params)
    on_text = require(params, "on")
    timeline = parse_timeline(params, project)
    count_type = parse_enum(params, "type", CountType, CountType.GENERAL)
    buckets = parse_int(params, "buckets", DEFAULT_NUMERIC_BUCKETS, low=1, high=MAX_NUMERIC_BUCKETS)
    assert buckets is not None
    csv_out = wants_csv(params)
    where = compile_where(params, project.timezone)
    on = _compile("number", on_text, project.timezone)
    joins = bool((where and where.needs_profiles) or on.needs_profiles)
    where_sql = where.sql if where else None
    span: tuple[float, float] | None = ctx.engine.query(
        NumberRangeSpec(project.id, events, timeline.start_ms, timeline.end_ms, on.sql, where_sql, joins)
    )
    values: dict[str, dict[str, int | float]] = {}
    if span is not None:
        bucketing = numeric_buckets(span[0], span[1], buckets, on.sql)
        spec = SeriesSpec(
            project.id, events, timeline, count_type, where_sql=where_sql, numeric=bucketing, join_profiles=joins
        )
        rows: list[SeriesRow] = ctx.engine.query(spec)
        by_index: dict[int, list[SeriesRow]] = {}
        for row in rows:
            by_index.setdefault(int(row.key), []).append(row)
        check_reply_size(len(by_index), timeline)
        for index in sorted(by_index):  # ranges in ascending order
            label = bucket_label(bucketing.lower, bucketing.width, index)
            values[label] = zero_filled(timeline.labels, count_type)
            for row in by_index[index]:
                if row.label in values[label]:
                    values[label][row.label] = render_value(row.value, count_type)
    if csv_out:
        return segments_csv([on_text], values, timeline.labels)
    return segmentation_payload(values, timeline)


def _measure(ctx: QueryContext, measure: Measure) -> tuple[dict[str, int | float], bool]:
    """Per-bucket sum or average of `on`; a value that is not a number counts as 0 (https://developer.mixpanel.com/reference/segmentation-sum-query)."""
    params, project = ctx.params, ctx.project
    events = _event(params)
    on_text = require(params, "on")
    timeline = parse_timeline(params, project)
    parse_enum(params, "type", CountType, CountType.GENERAL)  # accepted; a sum is a sum
    csv_out = wants_csv(params)
    where = compile_where(params, project.timezone)
    on = _compile("number", on_text, project.timezone)
    spec = SeriesSpec(
        project.id,
        events,
        timeline,
        measure=measure,
        where_sql=where.sql if where else None,
        value_sql=on.sql,
        join_profiles=bool((where and where.needs_profiles) or on.needs_profiles),
    )
    rows: list[SeriesRow] = ctx.engine.query(spec)
    as_float = measure is Measure.AVERAGE
    results: dict[str, int | float] = dict.fromkeys(timeline.labels, 0.0 if as_float else 0)
    for row in rows:
        if row.label in results:
            results[row.label] = float(row.value) if as_float else render_value(row.value)
    return results, csv_out


def segmentation_sum(ctx: QueryContext) -> Any:
    results, csv_out = _measure(ctx, Measure.SUM)
    if csv_out:
        return results_csv(results)
    return {"status": "ok", "computed_at": datetime.now(UTC).isoformat(), "results": results}


def segmentation_average(ctx: QueryContext) -> Any:
    results, csv_out = _measure(ctx, Measure.AVERAGE)
    if csv_out:
        return results_csv(results)
    return {"results": results, "status": "ok"}
