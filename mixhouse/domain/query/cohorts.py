"""Cohorts: `/cohorts/list` on the Query API (https://developer.mixpanel.com/reference/cohorts-list) and the App API routes that define them
(`/api/app/projects/{id}/cohorts[/{cohort_id}]`, this server's own; docs/query-engage.md).

A cohort is a filter over profile properties and, optionally, "did event X at least N times in the last
D days". Counts are computed live on every call."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from mixhouse.domain.app_context import AppContext
from mixhouse.domain.query.context import QueryContext
from mixhouse.domain.query.engage import CohortCountSpec, membership_rule, profile_filter
from mixhouse.domain.saved.cohorts import Behavior, Cohort, CohortStore
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, NotFound

MAX_BEHAVIOR_DAYS = 3650


def _created(cohort: Cohort) -> str:
    return datetime.fromtimestamp(cohort.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _counts(engine: Engine, project_id: int, cohorts: list[Cohort]) -> list[int]:
    if not cohorts:
        return []
    now_ms = int(time.time() * 1000)
    rules = tuple(membership_rule(c, now_ms) for c in cohorts)
    return engine.query(CohortCountSpec(project_id, rules))


def _listed(cohort: Cohort, count: int) -> dict[str, Any]:
    return {
        "count": count,
        "is_visible": int(cohort.is_visible),
        "description": cohort.description,
        "created": _created(cohort),
        "project_id": cohort.project_id,
        "id": cohort.id,
        "name": cohort.name,
    }


def cohorts_list(ctx: QueryContext) -> list[dict[str, Any]]:
    cohorts = CohortStore(ctx.catalog).list(ctx.project.id)
    counts = _counts(ctx.engine, ctx.project.id, cohorts)
    return [_listed(c, n) for c, n in zip(cohorts, counts, strict=True)]


# -- App API ------------------------------------------------------------------------------------------


def _detail(cohort: Cohort, count: int) -> dict[str, Any]:
    return {
        **_listed(cohort, count),
        "filter": cohort.filter,
        "behavior": cohort.behavior.as_dict() if cohort.behavior else None,
    }


def _body(ctx: AppContext) -> dict[str, Any]:
    body = ctx.body if ctx.body is not None else dict(ctx.params)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, default: str | None) -> str | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _filter(body: dict[str, Any], current: str | None) -> str | None:
    value = _text(body, "filter", current)
    if value is not None and value.strip() == "":
        return None
    if value is not None:
        profile_filter(value)  # refuse a bad expression now, with its caret
    return value


def _behavior(body: dict[str, Any], current: Behavior | None) -> Behavior | None:
    if "behavior" not in body:
        return current
    raw = body["behavior"]
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("event"), str) or not raw["event"]:
        raise BadRequest('behavior must be {"event": <name>, "min_count": <n>, "days": <d>}')
    min_count, days = raw.get("min_count", 1), raw.get("days", 30)
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise BadRequest("behavior.min_count must be an integer of at least 1")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_BEHAVIOR_DAYS:
        raise BadRequest(f"behavior.days must be an integer from 1 to {MAX_BEHAVIOR_DAYS}")
    return Behavior(raw["event"], min_count, days)


def _visible(body: dict[str, Any], current: bool) -> bool:
    value = body.get("is_visible", current)
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise BadRequest("is_visible must be a boolean")


def _cohort_id(ctx: AppContext) -> int:
    return ctx.path_id("cohort_id", "Cohort not found for id {}")


def cohorts_collection(ctx: AppContext) -> dict[str, Any]:
    store = CohortStore(ctx.catalog)
    if ctx.method == "GET":
        cohorts = store.list(ctx.project.id)
        counts = _counts(ctx.engine, ctx.project.id, cohorts)
        return {"status": "ok", "results": [_detail(c, n) for c, n in zip(cohorts, counts, strict=True)]}
    body = _body(ctx)
    name = _text(body, "name", None)
    if not name:
        raise BadRequest("name is required")
    cohort = store.create(
        ctx.project.id,
        name=name,
        description=_text(body, "description", "") or "",
        filter=_filter(body, None),
        behavior=_behavior(body, None),
        is_visible=_visible(body, True),
    )
    return {"status": "ok", "results": _detail(cohort, _counts(ctx.engine, ctx.project.id, [cohort])[0])}


def cohort_item(ctx: AppContext) -> dict[str, Any]:
    store = CohortStore(ctx.catalog)
    cohort_id = _cohort_id(ctx)
    cohort = store.get(ctx.project.id, cohort_id)
    if cohort is None:
        raise NotFound(f"Cohort not found for id {cohort_id}")
    if ctx.method == "DELETE":
        store.delete(ctx.project.id, cohort_id)
        return {"status": "ok", "results": {"id": cohort_id, "deleted": True}}
    if ctx.method == "PATCH":
        body = _body(ctx)
        name = _text(body, "name", cohort.name)
        if not name:
            raise BadRequest("name cannot be empty")
        cohort = store.update(
            Cohort(
                id=cohort.id,
                project_id=cohort.project_id,
                name=name,
                description=_text(body, "description", cohort.description) or "",
                filter=_filter(body, cohort.filter),
                behavior=_behavior(body, cohort.behavior),
                is_visible=_visible(body, cohort.is_visible),
                created_at=cohort.created_at,
            )
        )
    return {"status": "ok", "results": _detail(cohort, _counts(ctx.engine, ctx.project.id, [cohort])[0])}
