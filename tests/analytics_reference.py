"""Brute-force funnels and retention: plain Python, one user at a time, written straight from the rules
in docs/query-funnels-retention.md. Slow and obviously correct; the engine must agree with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

GRACE_MS = 2_000


@dataclass(frozen=True)
class Ev:
    event: str
    distinct_id: str
    time_ms: int
    seq: int
    insert_id: str | None = None
    props: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def resolve(events: list[Ev], identity: dict[str, str]) -> list[Ev]:
    """Identity resolution, then $insert_id duplicates collapsed to the latest ingested copy."""
    latest: dict[tuple[str, str, int, str], Ev] = {}
    kept: list[Ev] = []
    for e in events:
        if e.insert_id is None:
            kept.append(e)
            continue
        key = (e.event, e.distinct_id, e.time_ms, e.insert_id)
        if key not in latest or latest[key].seq < e.seq:
            latest[key] = e
    kept += latest.values()
    out = [
        Ev(e.event, identity.get(e.distinct_id, e.distinct_id), e.time_ms, e.seq, e.insert_id, e.props) for e in kept
    ]
    return sorted(out, key=lambda e: (e.distinct_id, e.time_ms, e.seq))


def day_of(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def attempt(user_events: list[Ev], steps: list[str], entry: Ev, window_ms: int) -> list[Ev]:
    """The steps reached from `entry`: each next step is the earliest unused matching event no earlier
    than 2 s before the previous step and no later than entry + window."""
    reached = [entry]
    for step in steps[1:]:
        prev = reached[-1]
        used = {e.seq for e in reached}
        candidates = [
            e
            for e in user_events
            if e.event == step
            and e.time_ms >= prev.time_ms - GRACE_MS
            and e.time_ms <= entry.time_ms + window_ms
            and e.seq not in used
        ]
        if not candidates:
            break
        reached.append(min(candidates, key=lambda e: (e.time_ms, e.seq)))
    return reached


def funnel(
    events: list[Ev],
    steps: list[str],
    window_ms: int,
    start_ms: int,
    end_ms: int,
    *,
    totals: bool = False,
    identity: dict[str, str] | None = None,
) -> dict[date, tuple[list[int], list[float | None], list[float | None]]]:
    """Per entry day (UTC): per-step counts, mean ms from the previous step and from the entry."""
    by_user: dict[str, list[Ev]] = {}
    for e in resolve(events, identity or {}):
        by_user.setdefault(e.distinct_id, []).append(e)
    attempts: list[list[Ev]] = []
    for user_events in by_user.values():
        starts = [e for e in user_events if e.event == steps[0] and start_ms <= e.time_ms < end_ms]
        if totals:
            exit_ms = None
            for entry in starts:  # already in (time, seq) order
                if exit_ms is not None and entry.time_ms <= exit_ms:
                    continue
                reached = attempt(user_events, steps, entry, window_ms)
                attempts.append(reached)
                done = len(reached) == len(steps)
                exit_ms = max(e.time_ms for e in reached) if done else entry.time_ms + window_ms
        else:
            first_per_day: dict[date, Ev] = {}
            for entry in starts:
                first_per_day.setdefault(day_of(entry.time_ms), entry)
            attempts += [attempt(user_events, steps, entry, window_ms) for entry in first_per_day.values()]
    out: dict[date, tuple[list[int], list[float | None], list[float | None]]] = {}
    per_day: dict[date, list[list[Ev]]] = {}
    for reached in attempts:
        per_day.setdefault(day_of(reached[0].time_ms), []).append(reached)
    for day, group in per_day.items():
        counts: list[int] = []
        avg: list[float | None] = []
        avg_start: list[float | None] = []
        for k in range(len(steps)):
            hit = [r for r in group if len(r) > k]
            counts.append(len(hit))
            if k == 0 or not hit:
                avg.append(None)
                avg_start.append(None)
            else:
                avg.append(sum(r[k].time_ms - r[k - 1].time_ms for r in hit) / len(hit))
                avg_start.append(sum(r[k].time_ms - r[0].time_ms for r in hit) / len(hit))
        out[day] = (counts, avg, avg_start)
    return out


def retention(
    events: list[Ev],
    born_event: str,
    event: str,
    first: date,
    last: date,
    interval_count: int,
    *,
    compounded: bool = False,
    unbounded: bool = False,
) -> dict[str, dict[str, Any]]:
    """Daily cohorts in UTC, 24-hour intervals after each birth; returns strictly after the birth."""
    by_user: dict[str, list[Ev]] = {}
    for e in resolve(events, {}):
        by_user.setdefault(e.distinct_id, []).append(e)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    births: list[tuple[date, Ev]] = []
    for user_events in by_user.values():
        born = [e for e in user_events if e.event == born_event]
        if compounded:
            seen: dict[date, Ev] = {}
            for e in born:
                if start.timestamp() * 1000 <= e.time_ms < end.timestamp() * 1000:
                    seen.setdefault(day_of(e.time_ms), e)
            births += list(seen.items())
        elif born and start.timestamp() * 1000 <= born[0].time_ms < end.timestamp() * 1000:
            births.append((day_of(born[0].time_ms), born[0]))
    out: dict[str, dict[str, Any]] = {}
    day = first
    while day <= last:
        out[day.isoformat()] = {"counts": [0] * (interval_count + 1), "first": 0}
        day += timedelta(days=1)
    for day, birth in births:
        cell = out[day.isoformat()]
        cell["first"] += 1
        user_events = by_user[birth.distinct_id]
        indexes = {
            (e.time_ms - birth.time_ms) // 86_400_000
            for e in user_events
            if e.event == event and e.time_ms > birth.time_ms
        }
        indexes = {i for i in indexes if i <= interval_count}
        if unbounded:
            if indexes:
                for i in range(max(indexes) + 1):
                    cell["counts"][i] += 1
        else:
            for i in indexes:
                cell["counts"][i] += 1
    return out
