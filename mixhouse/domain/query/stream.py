"""Activity stream: `/stream/query` (https://developer.mixpanel.com/reference/activity-stream-query): the events of some users in a date range.

The ids asked for are resolved to their cluster's canonical id, and every event of the cluster is
returned (query-time resolution, as Mixpanel's reports do), `$insert_id` duplicates collapsed, oldest first, with `time` in
seconds and `$distinct_id` the canonical id. `from_date` may be at most 365 days back (as Mixpanel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import orjson

from mixhouse.domain.dates import today_in
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import get, parse_date_range, parse_int, parse_json, require
from mixhouse.domain.spec import Spec
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


def _ids(ctx: QueryContext) -> tuple[str, ...]:
    if get(ctx.params, "distinct_ids") is None and get(ctx.params, "distinct_id") is not None:
        return (require(ctx.params, "distinct_id"),)
    require(ctx.params, "distinct_ids")
    value = parse_json(ctx.params, "distinct_ids")
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        raise BadRequest("Invalid parameter: distinct_ids must be a JSON array of strings")
    return tuple(str(v) for v in value)


def stream_query(ctx: QueryContext) -> dict[str, object]:
    project = ctx.project
    ids = _ids(ctx)
    require(ctx.params, "from_date")
    require(ctx.params, "to_date")
    span = parse_date_range(ctx.params, project)
    if span.first < today_in(project.timezone) - timedelta(days=MAX_DAYS_BACK):
        raise BadRequest(f"Date range exceeds {MAX_DAYS_BACK} days into the past")
    limit = parse_int(ctx.params, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    assert limit is not None
    lines: list[str] = ctx.engine.query(StreamSpec(project.id, span.start_ms, span.end_ms, ids, limit))
    return {"status": "ok", "results": {"events": [orjson.Fragment(line) for line in lines]}}
