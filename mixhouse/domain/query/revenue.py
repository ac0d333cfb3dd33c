"""Revenue: `/api/2.0/engage/revenue`, the figures of Mixpanel's legacy Revenue report, from the
`$transactions` list that profiles carry (`people.track_charge` appends `{"$amount", "$time"}` to it).

Parameters: `from_date`, `to_date` (or v2's `unit` + `interval`), `unit` (`day` default, `week`, `month`).
The reply is keyed by bucket and `$overall`, each `{"amount", "count", "paid_count"}`. Rules and the
choices where Mixpanel's documentation is silent: docs/query-engage.md."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mixhouse.domain.calendar import bucket_start, bucket_starts
from mixhouse.domain.project import Project
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import DateRange, Params, Unit, parse_date_range, parse_unit
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine

OVERALL = "$overall"


@dataclass(frozen=True)
class RevenueSpec(Spec["list[Transaction]"]):
    """Every transaction of the project's profiles whose `$time` text starts with a day in
    [first_day, last_day] (its first ten characters, `YYYY-MM-DD`)."""

    project_id: int
    first_day: date
    last_day: date


@dataclass(frozen=True)
class Transaction:
    distinct_id: str
    time: str  # the `$time` as stored: `YYYY-MM-DDTHH:MM:SS`, UTC unless it carries an offset
    amount: float


def transaction_day(time_text: str, timezone: str) -> date | None:
    """The project-timezone day of a transaction's `$time`; None when it is no ISO datetime."""
    try:
        moment = datetime.fromisoformat(time_text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone)).date()


def bucket_keys(span: DateRange, unit: Unit) -> list[date]:
    return bucket_starts(span.first, span.last, unit)


def _figures(transactions: list[Transaction]) -> dict[str, Any]:
    """`amount`: the sum; `count`: profiles with a transaction; `paid_count`: those whose sum is above 0."""
    per_user: dict[str, float] = {}
    for t in transactions:
        per_user[t.distinct_id] = per_user.get(t.distinct_id, 0) + t.amount
    amount = sum(t.amount for t in transactions)
    return {
        "amount": round(amount, 6),
        "count": len(per_user),
        "paid_count": sum(1 for total in per_user.values() if total > 0),
    }


@dataclass(frozen=True)
class RevenueRequest:
    """`/engage/revenue`: the days and the unit (day, week or month) of the buckets."""

    span: DateRange
    unit: Unit

    @classmethod
    def read(cls, params: Params, project: Project) -> RevenueRequest:
        unit = parse_unit(params, (Unit.DAY, Unit.WEEK, Unit.MONTH))
        return cls(parse_date_range(params, project, default_unit=unit), unit)


def revenue_figures(engine: Engine, project: Project, req: RevenueRequest) -> dict[str, Any]:
    """{"$overall": figures, bucket start: figures, ...} (see _figures)."""
    span, unit = req.span, req.unit
    # A day either side: `$time` is UTC, the buckets are days in the project's timezone.
    rows = engine.query(RevenueSpec(project.id, span.first - timedelta(days=1), span.last + timedelta(days=1)))
    in_range: dict[date, list[Transaction]] = {}
    for t in rows:
        day = transaction_day(t.time, project.timezone)
        if day is not None and span.first <= day <= span.last:
            in_range.setdefault(bucket_start(day, unit), []).append(t)
    results: dict[str, Any] = {OVERALL: _figures([t for ts in in_range.values() for t in ts])}
    for key in bucket_keys(span, unit):
        results[key.isoformat()] = _figures(in_range.get(key, []))
    return results


def revenue(ctx: QueryContext) -> dict[str, Any]:
    results = revenue_figures(ctx.engine, ctx.project, RevenueRequest.read(ctx.params, ctx.project))
    return {
        "computed_at": datetime.now(UTC).isoformat(),
        "results": results,
        "session_id": secrets.token_hex(8),
        "status": "ok",
    }
