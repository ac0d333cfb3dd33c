"""From a script's source (`Events`, `People`, `join`) to the engine's scans, and from Arrow batches to the
column JSON the runtime reads.

Selectors are the segmentation expression language: they are parsed here and handed to the engine as the
scan's filter, so the store drops what does not match. A list of selectors matches an event when any of
them does; when the selectors mix event names and expressions in a way one filter cannot say exactly
(`[{event: "a"}, {event: "b", selector: "x"}]`), the store reads the superset (the names, and the `or` of
the expressions) and each event is checked here against the exact rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mixhouse.domain.calendar import day_start_ms, parse_date
from mixhouse.domain.project import Project
from mixhouse.domain.scan import ScanQuery
from mixhouse.errors import BadRequest
from mixhouse.expr import ast, passes
from mixhouse.expr.plan import EventExpr


@dataclass(frozen=True)
class Selector:
    event: str | None
    where: EventExpr | None


@dataclass(frozen=True)
class SelectorSet:
    """What the store is asked (names, where) and, when that is a superset, the exact rule: every group
    of `checks` must have a selector that matches (empty: the store's answer is exact)."""

    names: tuple[str, ...] | None
    where: EventExpr | None
    checks: tuple[tuple[Selector, ...], ...] = ()

    def keeps(self, record: Mapping[str, Any], user: Mapping[str, Any] | None) -> bool:
        return all(any(_matches(s, record, user) for s in group) for group in self.checks)


def _matches(s: Selector, record: Mapping[str, Any], user: Mapping[str, Any] | None) -> bool:
    if s.event is not None and record.get("name") != s.event:
        return False
    return s.where is None or passes(s.where.tree, record, user=user, timezone=s.where.timezone)


def _or(exprs: list[EventExpr]) -> EventExpr:
    if len(exprs) == 1:
        return exprs[0]
    tree = ast.Logical(op="or", operands=tuple(ast.filter_form(e.tree) for e in exprs))
    return EventExpr(tree, " or ".join(f"({e.text})" for e in exprs), exprs[0].timezone)


def _and(a: EventExpr | None, b: EventExpr | None) -> EventExpr | None:
    if a is None or b is None:
        return a or b
    tree = ast.Logical(op="and", operands=(ast.filter_form(a.tree), ast.filter_form(b.tree)))
    return EventExpr(tree, f"({a.text}) and ({b.text})", a.timezone)


def selector_set(raw: list[dict[str, Any]], timezone: str, what: str) -> SelectorSet:
    selectors: list[Selector] = []
    for item in raw:
        text = item.get("selector")
        try:
            where = EventExpr.parse(str(text), timezone=timezone) if text is not None else None
        except Exception as exc:  # an ExpressionError: say which selector
            raise BadRequest(f"{what}: {exc}") from exc
        selectors.append(Selector(item.get("event"), where))
    if not selectors:
        return SelectorSet(None, None)
    any_name_free = any(s.event is None for s in selectors)
    names = None if any_name_free else tuple(sorted({s.event for s in selectors if s.event is not None}))
    wheres = [s.where for s in selectors if s.where is not None]
    all_have_where = len(wheres) == len(selectors)
    where = _or(wheres) if all_have_where else None
    same_where = all_have_where and len({w.tree for w in wheres}) == 1
    exact_in_store = (
        not wheres  # names only (or nothing)
        or (all_have_where and any_name_free and all(s.event is None for s in selectors))  # expressions only
        or (same_where and not any_name_free)  # one expression over several names
    )
    if same_where and wheres:
        where = wheres[0]
    return SelectorSet(names, where, () if exact_in_store else (tuple(selectors),))


def combine(a: SelectorSet, b: SelectorSet) -> SelectorSet:
    """Both sets must match (the event selectors of Events() and the selectors of join())."""
    if a.names is None:
        names = b.names
    elif b.names is None:
        names = a.names
    else:
        names = tuple(sorted(set(a.names) & set(b.names)))
    return SelectorSet(names, _and(a.where, b.where), a.checks + b.checks)


def date_bounds(source: Mapping[str, Any], timezone: str) -> tuple[int, int]:
    """[from_date, to_date] as whole days in the project's timezone, as UTC epoch ms [start, end)."""
    try:
        first = parse_date("from_date", source.get("from_date"))
        last = parse_date("to_date", source.get("to_date"))
    except BadRequest as exc:
        raise BadRequest(f"Events(): {exc.message}") from exc
    if first > last:
        raise BadRequest("Events(): from_date cannot be later than to_date")
    return day_start_ms(first, timezone), day_start_ms(last + timedelta(days=1), timezone)


def events_scan(
    project: Project,
    source: Mapping[str, Any],
    selectors: SelectorSet,
    batch_rows: int,
    resolve_identity: bool = True,
    user_order: bool = False,
) -> ScanQuery:
    start, end = date_bounds(source, project.timezone)
    return ScanQuery(
        project_id=project.id,
        kind="events",
        from_ms=start,
        to_ms=end,
        events=selectors.names,
        where=selectors.where,
        order="user" if user_order else "time",
        resolve_identity=resolve_identity,
        batch_rows=batch_rows,
    )


def profiles_scan(project: Project, selectors: SelectorSet, batch_rows: int) -> ScanQuery:
    return ScanQuery(project_id=project.id, kind="profiles", where=selectors.where, batch_rows=batch_rows)


# -- batches as the runtime reads them ----------------------------------------------------------------


def _local_ms(times: pa.Array, timezone: str) -> pa.Array:
    """Epoch ms shifted into the project's timezone: JQL's `time` is "in your project's timezone, not UTC"."""
    if timezone in ("UTC", "Etc/UTC"):
        return times
    stamps = times.cast(pa.timestamp("ms", tz=timezone))
    return pc.local_timestamp(stamps).cast(pa.int64())


def _json_list(values: list[Any]) -> bytes:
    return orjson.dumps(values)


def _objects(column: pa.Array) -> bytes:
    texts = column.to_pylist()
    return b"[" + ",".join(t if t else "null" for t in texts).encode() + b"]"


def event_columns(batch: pa.RecordBatch, timezone: str) -> str:
    times = _local_ms(batch.column("time"), timezone)
    return (
        b'{"n":'
        + _json_list(batch.column("name").to_pylist())
        + b',"d":'
        + _json_list(batch.column("distinct_id").to_pylist())
        + b',"t":'
        + _json_list(times.to_pylist())
        + b',"p":'
        + _objects(batch.column("properties"))
        + b"}"
    ).decode()


def user_columns(batch: pa.RecordBatch) -> str:
    return (
        b'{"d":'
        + _json_list(batch.column("distinct_id").to_pylist())
        + b',"p":'
        + _objects(batch.column("properties"))
        + b"}"
    ).decode()


def exact_filter(batch: pa.RecordBatch, selectors: SelectorSet, users: Mapping[str, Any] | None) -> pa.RecordBatch:
    """The events of a superset batch that the exact selector rule keeps (the rare mixed-selector case)."""
    names = batch.column("name").to_pylist()
    ids = batch.column("distinct_id").to_pylist()
    times = batch.column("time").to_pylist()
    props = batch.column("properties").to_pylist()
    keep = []
    for name, did, t, p in zip(names, ids, times, props, strict=True):
        record = {"name": name, "distinct_id": did, "time_ms": t, "properties": orjson.loads(p) if p else {}}
        keep.append(selectors.keeps(record, users.get(did) if users is not None and did is not None else None))
    return batch.filter(pa.array(keep, type=pa.bool_()))


__all__ = [
    "SelectorSet",
    "combine",
    "event_columns",
    "events_scan",
    "exact_filter",
    "profiles_scan",
    "selector_set",
    "user_columns",
]
