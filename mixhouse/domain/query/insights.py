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
from mixhouse.domain.calendar import as_datetime, bucket_starts, day_start_ms, parse_date, today_in, wall_clock_hours
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import parse_int, require
from mixhouse.domain.saved.bookmarks import Bookmark, BookmarkStore
from mixhouse.domain.spec import Spec
from mixhouse.engine.duckdb.expressions import Scope, compile_filter, compile_segment_key
from mixhouse.errors import BadRequest, NotFound
from mixhouse.expr import ast, parse

UNITS = ("hour", "day", "week", "month")
TYPES = ("general", "unique", "average")
MAX_LAST_DAYS = 3650
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class InsightsSpec(Spec["list[InsightsRow]"]):
    project_id: int
    events: tuple[str, ...]
    start_ms: int
    end_ms: int
    timezone: str
    unit: str
    count_type: str
    where_sql: str | None
    on_sql: str | None  # VARCHAR[] of segment keys


@dataclass(frozen=True)
class InsightsRow:
    event: str
    segment: str | None
    bucket: datetime  # naive, local to the project's timezone
    value: float


@dataclass(frozen=True)
class ReportQuery:
    """A validated bookmark query."""

    events: tuple[str, ...]
    on: str | None
    where: str | None
    unit: str
    count_type: str
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
    query = ReportQuery(
        events=_events_of(raw.get("event")),
        on=_expression(raw.get("on"), "on"),
        where=_expression(raw.get("where"), "where"),
        unit=unit,
        count_type=count_type,
        first=first,
        last=last,
    )
    _compile(query, project)  # a bad expression is refused with its caret
    if len(_buckets(query)) > MAX_BUCKETS:
        raise BadRequest("the date range has too many buckets for this unit")
    return query


def _compile(query: ReportQuery, project: Project) -> tuple[str | None, str | None]:
    scope = Scope.events("e", timezone=project.timezone)
    where_sql = compile_filter(parse(query.where), scope) if query.where else None
    on_sql = compile_segment_key(parse(query.on), scope) if query.on else None
    return where_sql, on_sql


def _buckets(query: ReportQuery) -> list[datetime]:
    """Every bucket's local start from the first to the last day (the first bucket may start before)."""
    if query.unit == "hour":
        return wall_clock_hours(query.first, query.last)
    return [as_datetime(d) for d in bucket_starts(query.first, query.last, query.unit)]


def _key(bucket: datetime, zone: ZoneInfo) -> str:
    return bucket.replace(tzinfo=zone).isoformat()


def _number(value: float, count_type: str) -> float | int:
    return round(value, 6) if count_type == "average" else int(value)


def _header(on: str) -> str:
    tree = parse(on)
    return tree.name if isinstance(tree, ast.Property) else on


def run_report(ctx: QueryContext, query: ReportQuery) -> dict[str, Any]:
    project = ctx.project
    zone = ZoneInfo(project.timezone)
    where_sql, on_sql = _compile(query, project)
    start_ms = day_start_ms(query.first, project.timezone)
    end_ms = day_start_ms(query.last + timedelta(days=1), project.timezone)
    spec = InsightsSpec(
        project.id, query.events, start_ms, end_ms, project.timezone, query.unit, query.count_type, where_sql, on_sql
    )
    rows: list[InsightsRow] = ctx.engine.query(spec)
    keys = [_key(b, zone) for b in _buckets(query)]
    zero: float | int = 0.0 if query.count_type == "average" else 0
    series: dict[str, Any] = {}
    if on_sql is None:
        for event in query.events:
            series[event] = dict.fromkeys(keys, zero)
        for row in rows:
            series[row.event][_key(row.bucket, zone)] = _number(row.value, query.count_type)
    else:
        for row in rows:
            segments = series.setdefault(row.event, {})
            segment = segments.get(row.segment)
            if segment is None:  # not setdefault: its argument (a zero-filled series) would be built per row
                segment = segments[row.segment] = dict.fromkeys(keys, zero)
            segment[_key(row.bucket, zone)] = _number(row.value, query.count_type)
    first = datetime(query.first.year, query.first.month, query.first.day, tzinfo=zone)
    last = datetime(query.last.year, query.last.month, query.last.day, 23, 59, 59, 999000, tzinfo=zone)
    return {
        "computed_at": datetime.now(UTC).isoformat(),
        "date_range": {"from_date": first.isoformat(), "to_date": last.isoformat()},
        "headers": ["$event", *([_header(query.on)] if query.on else [])],
        "series": series,
    }


def insights(ctx: QueryContext) -> dict[str, Any]:
    require(ctx.params, "bookmark_id")
    bookmark_id = parse_int(ctx.params, "bookmark_id", low=0)
    assert bookmark_id is not None
    bookmark = BookmarkStore(ctx.catalog).get(ctx.project.id, bookmark_id)
    if bookmark is None:
        raise NotFound(f"Report not found for id {bookmark_id}")
    return run_report(ctx, report_query(bookmark.query, ctx.project))


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
