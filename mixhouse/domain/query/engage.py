"""Profile query: `/engage` on the Query API (https://developer.mixpanel.com/reference/engage-query).

Parameters are read into an `EngageSpec`; the engine answers with the page's profiles and the total.

Paging (as every real client reads it, docs/query-engage.md): results are ordered by distinct id; page 0 carries `total`; a page past
the end is `results: []`; `page > 0` needs the `session_id` of page 0. The session id starts with the
snapshot time (ms), so a later page evaluates time windows (cohort behaviours, `behaviors`) at the same
instant even when the engine no longer holds the page-0 snapshot. Rules and choices: docs/query-engage.md.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import orjson

from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.params import Params, get, parse_bool, parse_int, parse_json
from mixhouse.domain.saved.cohorts import Cohort, CohortStore
from mixhouse.domain.spec import Spec
from mixhouse.errors import BadRequest, MissingParameter
from mixhouse.expr.plan import EventExpr

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000  # larger requests are clamped, and the reply says so in `page_size`
MAX_BEHAVIORS = 10
_WINDOW_UNITS_MS = {"h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


@dataclass(frozen=True)
class MembershipRule:
    """Who is in a cohort: users who did `event` at least `min_count` times in [start_ms, end_ms) (when
    an event is given; otherwise everyone with a profile), whose profile passes `filter` (a profile
    expression: `user[...]` and `properties[...]` read the profile, `{}` for a user without one)."""

    filter: EventExpr | None
    event: str | None = None
    min_count: int = 1
    start_ms: int = 0
    end_ms: int = 0


@dataclass(frozen=True)
class EventSelector:
    """Events named `event` that pass `where` (an event expression; None: all of them)."""

    event: str
    where: EventExpr | None = None


@dataclass(frozen=True)
class BehaviorCount:
    """A named count of the events that match any of `selectors` in [start_ms, end_ms), read by the
    `where` as `behaviors["name"]` (0 for a user with none)."""

    name: str
    selectors: tuple[EventSelector, ...]
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class EngageSpec(Spec["EngagePage"]):
    project_id: int
    group_key: str | None = None  # data_group_id: group profiles of this key instead of users
    distinct_ids: tuple[str, ...] | None = None
    where: EventExpr | None = None  # over the profile; reads behaviors["name"] when behaviors are given
    cohort: MembershipRule | None = None
    include_all_users: bool = True
    behaviors: tuple[BehaviorCount, ...] = ()
    page: int = 0
    page_size: int = DEFAULT_PAGE_SIZE
    session_id: str = field(default="", compare=False)  # not part of the query's identity


@dataclass(frozen=True)
class EngagePage:
    total: int
    rows: list[tuple[str, str]]  # (distinct id, properties JSON text) in page order


@dataclass(frozen=True)
class CohortCountSpec(Spec[list[int]]):
    project_id: int
    rules: tuple[MembershipRule, ...]


def profile_filter(text: str, *, behaviors: bool = False) -> EventExpr:
    """A filter over a profile. Profile datetimes ($last_seen, $created) are stored in UTC, so
    datetime("...") is read in UTC too. A profile has no event fields: `event[...]` is refused here, with
    its caret, as it would be by any engine. `behaviors`: `behaviors["name"]` is known too."""
    return EventExpr.parse(text, timezone="UTC", behaviors=behaviors).without("event")


def membership_rule(cohort: Cohort, now_ms: int) -> MembershipRule:
    where = profile_filter(cohort.filter) if cohort.filter else None
    if cohort.behavior is None:
        return MembershipRule(where)
    b = cohort.behavior
    return MembershipRule(where, b.event, b.min_count, now_ms - b.days * 86_400_000, now_ms)


def _string_list(params: Params, name: str) -> list[str] | None:
    value = parse_json(params, name)
    if value is None:
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        raise BadRequest(f"Invalid parameter: {name} must be a JSON array of strings")
    return [str(v) for v in value]


def _cohort_id(params: Params) -> int | None:
    raw = get(params, "filter_by_cohort")
    if raw is None:
        return None
    value = parse_json(params, "filter_by_cohort")
    if isinstance(value, str):  # a JSON string holding the JSON object (one encoding too many)
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("Invalid parameter: filter_by_cohort") from exc
    cid = value.get("id") if isinstance(value, dict) else value
    if isinstance(cid, str) and cid.strip().isascii() and cid.strip().isdigit():
        cid = int(cid)
    if not isinstance(cid, int) or isinstance(cid, bool):
        raise BadRequest('Invalid parameter: filter_by_cohort must be {"id": <cohort id>}')
    return cid


def _behaviors(params: Params, now_ms: int) -> tuple[BehaviorCount, ...]:
    value = parse_json(params, "behaviors")
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_BEHAVIORS:
        raise BadRequest(f"Invalid parameter: behaviors must be a JSON array of at most {MAX_BEHAVIORS} behaviors")
    out: list[BehaviorCount] = []
    for b in value:
        if not isinstance(b, dict) or not isinstance(b.get("name"), str) or not b["name"]:
            raise BadRequest("Invalid parameter: each behavior needs a name")
        window = str(b.get("window", "30d")).strip().lower()
        unit_ms = _WINDOW_UNITS_MS.get(window[-1:]) if window else None
        if unit_ms is None or not (window[:-1].isascii() and window[:-1].isdigit()):
            raise BadRequest(f"Invalid parameter: behavior window {window!r} (use e.g. 30d, 12h, 4w)")
        selectors = b.get("event_selectors")
        if not isinstance(selectors, list) or not selectors:
            raise BadRequest("Invalid parameter: each behavior needs event_selectors")
        alternatives = []
        for sel in selectors:
            if not isinstance(sel, dict) or not isinstance(sel.get("event"), str):
                raise BadRequest("Invalid parameter: each event selector needs an event")
            if "\0" in sel["event"]:
                raise BadRequest("Invalid parameter: NUL in an event name")
            text = sel.get("selector")
            # Over the event alone (no profile), in UTC.
            where = EventExpr.parse(text).without("user") if isinstance(text, str) and text.strip() else None
            alternatives.append(EventSelector(sel["event"], where))
        out.append(BehaviorCount(b["name"], tuple(alternatives), now_ms - int(window[:-1]) * unit_ms, now_ms))
    return tuple(out)


def _snapshot_ms(session_id: str | None) -> int | None:
    if session_id:
        head = session_id.split("-", 1)[0]
        if head.isascii() and head.isdigit() and len(head) == 13:
            return int(head)
    return None


def new_session_id(now_ms: int) -> str:
    return f"{now_ms}-{secrets.token_hex(3).upper()}"


def parse_engage(params: Params, project_id: int, cohorts: CohortStore) -> EngageSpec:
    """The query of `/engage` as the engine answers it (see EngageRequest)."""
    page = parse_int(params, "page", 0, low=0)
    assert page is not None
    session_id = get(params, "session_id")
    if page > 0 and session_id is None:
        raise MissingParameter("session_id")
    page_size = parse_int(params, "page_size", DEFAULT_PAGE_SIZE, low=1)
    assert page_size is not None
    page_size = min(page_size, MAX_PAGE_SIZE)

    now_ms = _snapshot_ms(session_id) or int(time.time() * 1000)
    as_of = parse_int(params, "as_of_timestamp", None, low=0)
    behavior_end_ms = as_of * 1000 if as_of is not None else now_ms

    ids = _string_list(params, "distinct_ids")
    single = get(params, "distinct_id")
    if single is not None:
        ids = [*(ids or []), single]

    cohort_id = _cohort_id(params)
    behaviors = _behaviors(params, behavior_end_ms)
    if cohort_id is not None and behaviors:
        raise BadRequest("behaviors and filter_by_cohort are mutually exclusive")
    group_key = get(params, "data_group_id")
    if group_key is not None and (cohort_id is not None or behaviors):
        raise BadRequest("data_group_id cannot be combined with filter_by_cohort or behaviors")

    text = get(params, "where")
    where = profile_filter(text, behaviors=bool(behaviors)) if text else None
    cohort = None
    if cohort_id is not None:
        saved = cohorts.get(project_id, cohort_id)
        if saved is None:
            raise BadRequest(f"Invalid parameter: filter_by_cohort (no cohort with id {cohort_id})")
        cohort = membership_rule(saved, now_ms)
    return EngageSpec(
        project_id=project_id,
        group_key=group_key,
        distinct_ids=tuple(ids) if ids is not None else None,
        where=where,
        cohort=cohort,
        include_all_users=parse_bool(params, "include_all_users", True),
        behaviors=behaviors,
        page=page,
        page_size=page_size,
        session_id=session_id or new_session_id(now_ms),
    )


def _result(distinct_id: str, properties: str, wanted: tuple[str, ...] | None) -> orjson.Fragment:
    if wanted is not None:
        props = orjson.loads(properties)
        properties = orjson.dumps({k: props[k] for k in wanted if k in props}).decode()
    return orjson.Fragment(
        '{"$distinct_id":' + orjson.dumps(distinct_id).decode() + ',"$properties":' + properties + "}"
    )


@dataclass(frozen=True)
class EngageRequest:
    """`/engage`, read once: the page of matching profiles to find (`query`), and which of their properties
    to show (`output_properties`; None: all)."""

    query: EngageSpec
    output_properties: tuple[str, ...] | None

    @classmethod
    def read(cls, params: Params, project_id: int, cohorts: CohortStore) -> EngageRequest:
        query = parse_engage(params, project_id, cohorts)
        wanted = _string_list(params, "output_properties")
        return cls(query, tuple(wanted) if wanted is not None else None)


def engage(ctx: QueryContext) -> dict[str, object]:
    req = EngageRequest.read(ctx.params, ctx.project.id, CohortStore(ctx.catalog))
    spec = req.query
    result = ctx.engine.query(spec)
    reply: dict[str, object] = {
        "page": spec.page,
        "page_size": spec.page_size,
        "session_id": spec.session_id,
        "status": "ok",
    }
    if spec.page == 0:
        reply["total"] = result.total
    reply["results"] = [_result(d, p, req.output_properties) for d, p in result.rows]
    return reply
