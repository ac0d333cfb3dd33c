"""Activity stream: `/stream/query` (https://developer.mixpanel.com/reference/activity-stream-query): the events of some users in a date range.

The ids asked for are resolved to their cluster's canonical id, and every event of the cluster is
returned (query-time resolution, as Mixpanel's reports do), `$insert_id` duplicates collapsed, oldest first, with `time` in
seconds and `$distinct_id` the canonical id. `from_date` may be at most 365 days back (as Mixpanel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import orjson

from mixhouse.domain.calendar import DateRange, today_in
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import Params, get, parse_date_range, parse_int, parse_json, require
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest

MAX_DAYS_BACK = 365
DEFAULT_LIMIT = MAX_LIMIT = 100_000


@dataclass(frozen=True)
class StreamSpec(Spec[list[str]]):
    project_id: int
    start_ms: int
    end_ms: int
    distinct_ids: tuple[str, ...]
    limit: int


def _ids(params: Params) -> tuple[str, ...]:
    if get(params, "distinct_ids") is None and get(params, "distinct_id") is not None:
        return (require(params, "distinct_id"),)
    require(params, "distinct_ids")
    value = parse_json(params, "distinct_ids")
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        raise BadRequest("Invalid parameter: distinct_ids must be a JSON array of strings")
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class StreamRequest:
    """`/stream/query`: the users asked for, the days (at most MAX_DAYS_BACK back) and a limit."""

    distinct_ids: tuple[str, ...]
    span: DateRange
    limit: int

    @classmethod
    def read(cls, params: Params, project: Project) -> StreamRequest:
        ids = _ids(params)
        require(params, "from_date")
        require(params, "to_date")
        span = parse_date_range(params, project)
        if span.first < today_in(project.timezone) - timedelta(days=MAX_DAYS_BACK):
            raise BadRequest(f"Date range exceeds {MAX_DAYS_BACK} days into the past")
        limit = parse_int(params, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        assert limit is not None
        return cls(ids, span, limit)


def stream_lines(engine: Engine, project_id: int, req: StreamRequest) -> list[str]:
    """Each event as its JSON text, oldest first."""
    return engine.query(StreamSpec(project_id, req.span.start_ms, req.span.end_ms, req.distinct_ids, req.limit))


def stream_query(ctx: QueryContext) -> dict[str, object]:
    lines = stream_lines(ctx.engine, ctx.project.id, StreamRequest.read(ctx.params, ctx.project))
    return {"status": "ok", "results": {"events": [orjson.Fragment(line) for line in lines]}}
