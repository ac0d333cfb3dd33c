"""Event discovery endpoints (reference §5.6). `/events/names` is here; the other event breakdowns
follow the same pattern: parse parameters into a spec, let the engine count, shape the reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from mixhouse.domain.dates import today_in
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import CountType, DateRange, get, parse_date_range, parse_enum, parse_int


@dataclass(frozen=True)
class EventNamesSpec:
    project_id: int
    start_ms: int
    end_ms: int
    limit: int


def event_names(ctx: QueryContext) -> list[str]:
    """Names of the events seen in the range (default: the last 31 days), most frequent first."""
    project = ctx.project
    parse_enum(ctx.params, "type", CountType, CountType.GENERAL)  # accepted; order is by volume either way
    if get(ctx.params, "from_date") or get(ctx.params, "interval"):
        span = parse_date_range(ctx.params, project)
    else:
        today = today_in(project.timezone)
        span = DateRange(today - timedelta(days=30), today, project.timezone)
    limit = parse_int(ctx.params, "limit", 255, low=1, high=100_000)
    assert limit is not None
    names: list[str] = ctx.engine.query(EventNamesSpec(project.id, span.start_ms, span.end_ms, limit))
    return names
