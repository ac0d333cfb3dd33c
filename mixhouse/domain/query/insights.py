"""Saved Insights reports: `/insights?bookmark_id=` (https://developer.mixpanel.com/reference/insights-query) and the App API routes that save
them (`/api/app/projects/{id}/bookmarks[/{bookmark_id}]`, this server's own; docs/query-engage.md).

A bookmark holds a segmentation-style query: `event` (one name or a list), optional `on` and `where`
expressions, `unit` (hour, day, week, month), `type` (general, unique, average) and either
`from_date`/`to_date` or `last` (days ending today). Every bucket key is the bucket's start in the
project's timezone with its UTC offset, e.g. "2020-08-31T00:00:00-07:00"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mixhouse.domain.app_context import AppContext
from mixhouse.domain.calendar import (
    Buckets,
    Unit,
    as_datetime,
    bucket_starts,
    day_start_ms,
    parse_date,
    today_in,
    wall_clock_hours,
)
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import CountType, Params, parse_int, require
from mixhouse.domain.saved.bookmarks import Bookmark, BookmarkStore
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, NotFound
from mixhouse.expr import EventExpr, ExpressionScopeError, ast

UNITS = ("hour", "day", "week", "month")
TYPES = ("general", "unique", "average")
MAX_LAST_DAYS = 3650
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class InsightsSpec(Spec["list[InsightsRow]"]):
    """Counts per event, segment (the keys of `on`; None without it) and bucket start."""

    project_id: int
    events: tuple[str, ...]
    buckets: Buckets
    count_type: CountType
    where: EventExpr | None
    on: EventExpr | None


@dataclass(frozen=True)
class InsightsRow:
    event: str
    segment: str | None
    bucket: datetime  # naive, local to the project's timezone
    value: float


@dataclass(frozen=True)
class ReportQuery:
    """A validated bookmark query: the typed request of a saved report."""

    events: tuple[str, ...]
    on: EventExpr | None
    where: EventExpr | None
    unit: Unit
    count_type: CountType
    first: date
    last: date


def _events_of(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str) and raw:
        return (raw,)
    if isinstance(raw, list) and raw and all(isinstance(e, str) and e for e in raw):
        return tuple(dict.fromkeys(raw))
    raise BadRequest("query.event must be an event name or a non-empty list of names")


def _expression(raw: Any, name: str) -> str | None:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    if not isinstance(raw, str):
        raise BadRequest(f"query.{name} must be an expression string")
    return raw


def _event_expression(text: str | None, timezone: str) -> EventExpr | None:
    """Parsed and checked; a report reads events only, so `user[...]` is refused (with its caret)."""
    if text is None:
        return None
    expr = EventExpr.parse(text, timezone=timezone)
    user_reads = [n.pos for n in ast.walk(expr.tree) if isinstance(n, ast.Property) and n.source == "user"]
    if user_reads:
        raise ExpressionScopeError("user[...] is not available in this query", text, min(user_reads))
    return expr


def report_query(raw: Any, project: Project) -> ReportQuery:
    """Check a bookmark's query (also when it is saved, so that a broken report cannot be stored)."""
    if not isinstance(raw, dict):
        raise BadRequest("query must be a JSON object")
    unit = str(raw.get("unit", "day")).lower()
    if unit not in UNITS:
        raise BadRequest(f"query.unit must be one of {', '.join(UNITS)}")
    count_type = str(raw.get("type", "general")).lower()
    if count_type not in TYPES:
        raise BadRequest(f"query.type must be one of {', '.join(TYPES)}")
    today = today_in(project.timezone)
    if raw.get("from_date") is not None or raw.get("to_date") is not None:
        first = parse_date("from_date", raw.get("from_date"))
        last = parse_date("to_date", raw.get("to_date"))
        if first > last:
            raise BadRequest("from_date cannot be later than to_date")
    else:
        days = raw.get("last", 30)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_LAST_DAYS:
            raise BadRequest(f"query.last must be a number of days from 1 to {MAX_LAST_DAYS}")
        first, last = today - timedelta(days=days - 1), today
    events = _events_of(raw.get("event"))
    on_text = _expression(raw.get("on"), "on")
    where_text = _expression(raw.get("where"), "where")
    # A bad expression is refused with its caret: `where` first, as it is applied first.
    where = _event_expression(where_text, project.timezone)
    on = _event_expression(on_text, project.timezone)
    query = ReportQuery(events, on, where, Unit(unit), CountType(count_type), first, last)
    if len(_buckets(query)) > MAX_BUCKETS:
        raise BadRequest("the date range has too many buckets for this unit")
    return query


def _buckets(query: ReportQuery) -> list[datetime]:
    """Every bucket's local start from the first to the last day (the first bucket may start before)."""
    if query.unit is Unit.HOUR:
        return wall_clock_hours(query.first, query.last)
    return [as_datetime(d) for d in bucket_starts(query.first, query.last, query.unit)]


def _engine_buckets(query: ReportQuery, timezone: str) -> Buckets:
    start_ms = day_start_ms(query.first, timezone)
    return Buckets.of(start_ms, day_start_ms(query.last + timedelta(days=1), timezone), timezone, query.unit)


def _number(value: float, count_type: CountType) -> float | int:
    return round(value, 6) if count_type is CountType.AVERAGE else int(value)


def _header(on: EventExpr) -> str:
    return on.tree.name if isinstance(on.tree, ast.Property) else on.text


@dataclass(frozen=True)
class ReportSeries:
    """A report's values: {event: {bucket key: value}} without `on`, {event: {segment: {...}}} with it.
    Bucket keys are each bucket's local start with its UTC offset, e.g. "2020-08-31T00:00:00-07:00"."""

    series: dict[str, Any]


def report_series(engine: Engine, project: Project, query: ReportQuery) -> ReportSeries:
    zone = ZoneInfo(project.timezone)
    spec = InsightsSpec(
        project.id,
        query.events,
        _engine_buckets(query, project.timezone),
        query.count_type,
        query.where,
        query.on,
    )
    rows = engine.query(spec)
    starts = _buckets(query)
    # Keyed once per bucket, never per row.
    key_of = {start: start.replace(tzinfo=zone).isoformat() for start in starts}
    keys = list(key_of.values())
    zero: float | int = 0.0 if query.count_type is CountType.AVERAGE else 0
    series: dict[str, Any] = {}
    if query.on is None:
        for event in query.events:
            series[event] = dict.fromkeys(keys, zero)
        for row in rows:
            series[row.event][_bucket_key(key_of, row.bucket, zone)] = _number(row.value, query.count_type)
    else:
        for row in rows:
            segments = series.setdefault(row.event, {})
            segment = segments.get(row.segment)
            if segment is None:  # not setdefault: its argument (a zero-filled series) would be built per row
                segment = segments[row.segment] = dict.fromkeys(keys, zero)
            segment[_bucket_key(key_of, row.bucket, zone)] = _number(row.value, query.count_type)
    return ReportSeries(series)


def _bucket_key(key_of: dict[datetime, str], bucket: datetime, zone: ZoneInfo) -> str:
    key = key_of.get(bucket)
    return key if key is not None else bucket.replace(tzinfo=zone).isoformat()


def run_report(engine: Engine, project: Project, query: ReportQuery) -> dict[str, Any]:
    """The Query API's `/insights` reply for a report."""
    zone = ZoneInfo(project.timezone)
    result = report_series(engine, project, query)
    first = datetime(query.first.year, query.first.month, query.first.day, tzinfo=zone)
    last = datetime(query.last.year, query.last.month, query.last.day, 23, 59, 59, 999000, tzinfo=zone)
    return {
        "computed_at": datetime.now(UTC).isoformat(),
        "date_range": {"from_date": first.isoformat(), "to_date": last.isoformat()},
        "headers": ["$event", *([_header(query.on)] if query.on else [])],
        "series": result.series,
    }


def _bookmark_id_param(params: Params) -> int:
    require(params, "bookmark_id")
    bookmark_id = parse_int(params, "bookmark_id", low=0)
    assert bookmark_id is not None
    return bookmark_id


def insights(ctx: QueryContext) -> dict[str, Any]:
    bookmark_id = _bookmark_id_param(ctx.params)
    bookmark = BookmarkStore(ctx.catalog).get(ctx.project.id, bookmark_id)
    if bookmark is None:
        raise NotFound(f"Report not found for id {bookmark_id}")
    return run_report(ctx.engine, ctx.project, report_query(bookmark.query, ctx.project))


# -- App API ------------------------------------------------------------------------------------------


def _detail(bookmark: Bookmark) -> dict[str, Any]:
    return {
        "id": bookmark.id,
        "project_id": bookmark.project_id,
        "name": bookmark.name,
        "description": bookmark.description,
        "query": bookmark.query,
        "created": datetime.fromtimestamp(bookmark.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def _body(ctx: AppContext) -> dict[str, Any]:
    if not isinstance(ctx.body, dict):
        raise BadRequest("the body must be a JSON object")
    return ctx.body


def _text(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _bookmark_id(ctx: AppContext) -> int:
    return ctx.path_id("bookmark_id", "Report not found for id {}")


def bookmarks_collection(ctx: AppContext) -> dict[str, Any]:
    store = BookmarkStore(ctx.catalog)
    if ctx.method == "GET":
        return {"status": "ok", "results": [_detail(b) for b in store.list(ctx.project.id)]}
    body = _body(ctx)
    name = _text(body, "name", "")
    if not name:
        raise BadRequest("name is required")
    query = body.get("query")
    report_query(query, ctx.project)
    assert isinstance(query, dict)
    bookmark = store.create(ctx.project.id, name=name, description=_text(body, "description", ""), query=query)
    return {"status": "ok", "results": _detail(bookmark)}


def bookmark_item(ctx: AppContext) -> dict[str, Any]:
    store = BookmarkStore(ctx.catalog)
    bookmark_id = _bookmark_id(ctx)
    bookmark = store.get(ctx.project.id, bookmark_id)
    if bookmark is None:
        raise NotFound(f"Report not found for id {bookmark_id}")
    if ctx.method == "DELETE":
        store.delete(ctx.project.id, bookmark_id)
        return {"status": "ok", "results": {"id": bookmark_id, "deleted": True}}
    if ctx.method == "PATCH":
        body = _body(ctx)
        name = _text(body, "name", bookmark.name)
        if not name:
            raise BadRequest("name cannot be empty")
        query = body.get("query", bookmark.query)
        report_query(query, ctx.project)
        bookmark = store.update(
            Bookmark(
                bookmark.id,
                bookmark.project_id,
                name,
                _text(body, "description", bookmark.description),
                query,
                bookmark.created_at,
            )
        )
    return {"status": "ok", "results": _detail(bookmark)}
