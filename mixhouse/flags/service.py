"""Feature-flag use cases: evaluation (`/flags`), definitions (`/flags/definitions`), management (the App
API's `feature-flags` routes) and import. Nothing here knows HTTP; the engine is reached only for cohort
membership, through `mixhouse.flags.cohorts`."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Project
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest, MissingParameter, NotFound
from mixhouse.flags.cohorts import CohortMembers
from mixhouse.flags.evaluate import Request, evaluate, evaluate_all
from mixhouse.flags.model import Flag, ServingMethod, Status, compile_flag, definition, validate_ruleset
from mixhouse.flags.store import FlagStore

MAX_CONTEXT_BYTES = 16 * 1024  # decoded; uvicorn and most proxies take request lines of this size
MAX_FLAGS_PER_PROJECT = 10_000
DISTINCT_ID_REQUIRED = "distinct_id must be provided in evalContext as a string"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- compiled definitions, per project, refreshed when the stored revision moves -------------------------


@dataclass(frozen=True)
class Compiled:
    revision: int
    flags: tuple[Flag, ...]  # enabled flags only, in storage order
    by_key: dict[str, Flag]
    definitions_body: bytes  # the whole /flags/definitions response
    cohorts: frozenset[str]  # cohorts the rollouts target


class DefinitionCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, Compiled] = {}

    def get(self, store: FlagStore, project_id: int) -> Compiled:
        revision = store.revision(project_id)
        item = self._items.get(project_id)
        if item is not None and item.revision == revision:
            return item
        docs = [d for d in store.docs(project_id) if d.get("status") == Status.ENABLED]
        flags = tuple(compile_flag(d) for d in docs)
        body = orjson.dumps({"flags": [definition(d) for d in docs]})
        cohorts = frozenset(r.cohort for f in flags for r in f.rollouts if r.cohort is not None)
        item = Compiled(revision, flags, {f.key: f for f in flags}, body, cohorts)
        with self._lock:
            self._items[project_id] = item
        return item


DEFINITIONS = DefinitionCache()


# -- evaluation --------------------------------------------------------------------------------------------


def parse_context(raw: str | None) -> dict[str, Any]:
    if raw is None or raw == "":
        raise MissingParameter("context")
    if len(raw.encode()) > MAX_CONTEXT_BYTES:
        raise BadRequest(f"context must be at most {MAX_CONTEXT_BYTES} bytes")
    try:
        # json, not orjson: the same numbers (big ints, floats) the SDKs' own json gives, so str() of a
        # context value hashes the same.
        context = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("context must be a JSON object") from exc
    if not isinstance(context, dict):
        raise BadRequest("context must be a JSON object")
    if not isinstance(context.get("distinct_id"), str) or not context["distinct_id"]:
        raise BadRequest(DISTINCT_ID_REQUIRED)
    return context


def evaluate_flags(
    catalog: Catalog,
    engine: Engine,
    project: Project,
    context: dict[str, Any],
    flag_key: str | None,
    cohorts: CohortMembers,
) -> dict[str, Any]:
    """`cohorts`: the server's cohort membership cache (its TTL is a setting)."""
    compiled = DEFINITIONS.get(FlagStore(catalog), project.id)

    def members(cohort: str, distinct_id: str) -> bool:
        return cohorts.is_member(catalog, engine, project.id, cohort, distinct_id)

    if flag_key is not None:
        flag = compiled.by_key.get(flag_key)
        selected = evaluate(flag, Request(context, members)) if flag is not None else None
        return {"code": 200, "flags": {flag_key: selected.as_dict()} if selected is not None else {}}
    return {"code": 200, "flags": evaluate_all(compiled.flags, context, members)}


def needs_engine(catalog: Catalog, project: Project, cohorts: CohortMembers) -> bool:
    """Whether evaluating this project's flags may query the engine (a targeted cohort is not cached):
    the HTTP layer then evaluates in a worker thread rather than on the event loop."""
    compiled = DEFINITIONS.get(FlagStore(catalog), project.id)
    return not cohorts.fresh(project.id, compiled.cohorts)


def definitions_body(catalog: Catalog, project: Project) -> bytes:
    return DEFINITIONS.get(FlagStore(catalog), project.id).definitions_body


# -- management --------------------------------------------------------------------------------------------


def _optional_text(body: dict[str, Any], name: str, default: str | None) -> str | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _required_text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} is required" if value is None else f"{name} must be a non-empty string")
    if len(value) > 255:
        raise BadRequest(f"{name} must be at most 255 characters")
    return value


def _enum(body: dict[str, Any], name: str, enum: type[Status] | type[ServingMethod], default: str) -> str:
    raw = body.get(name, default)
    try:
        return str(enum(str(raw).lower()).value)
    except ValueError as exc:
        allowed = ", ".join(e.value for e in enum)
        raise BadRequest(f"{name} must be one of: {allowed}") from exc


def _tags(body: dict[str, Any], default: list[str]) -> list[str]:
    tags = body.get("tags", default)
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest("tags must be a list of strings")
    return list(tags)


def _bool_or_none(body: dict[str, Any], name: str, default: bool | None) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{name} must be a boolean")
    return value


def _new_id(body: dict[str, Any]) -> str:
    """A flag's id: the body's (an import keeps Mixpanel's ids), else a new UUID."""
    given = body.get("id")
    if given is None or given == "":
        return str(uuid.uuid4())
    if isinstance(given, bool) or not isinstance(given, str | int) or len(str(given)) > 255:
        raise BadRequest("id must be a string of at most 255 characters")
    return str(given)


def build_document(
    project: Project, body: Any, *, base: dict[str, Any] | None, author: str | None, partial: bool = False
) -> dict[str, Any]:
    """A flag object from a create (no base), full replacement (PUT) or partial edit (PATCH) body, or
    an imported definition."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    old = base if partial and base is not None else {}
    now = now_iso()
    status = _enum(body, "status", Status, old.get("status", Status.DISABLED))
    ruleset_raw = body.get("ruleset", old.get("ruleset"))
    if ruleset_raw is None:
        raise BadRequest("ruleset is required")
    hash_salt = body.get("hash_salt", (base or {}).get("hash_salt", secrets.token_hex(16) if base is None else None))
    if hash_salt is not None and not isinstance(hash_salt, str):
        raise BadRequest("hash_salt must be a string")
    doc: dict[str, Any] = {
        "id": base["id"] if base is not None else _new_id(body),
        "project_id": project.id,
        "workspace_id": project.id,
        "name": _required_text(body, "name", old.get("name")),
        "key": _required_text(body, "key", old.get("key")),
        "description": _optional_text(body, "description", old.get("description")),
        "status": status,
        "tags": _tags(body, old.get("tags", [])),
        "experiment_id": _optional_text(body, "experiment_id", (base or {}).get("experiment_id")),
        "is_experiment_active": _bool_or_none(body, "is_experiment_active", (base or {}).get("is_experiment_active")),
        "context": _required_text(body, "context", old.get("context", "distinct_id")),
        "data_group_id": _optional_text(body, "data_group_id", old.get("data_group_id")),
        "serving_method": _enum(body, "serving_method", ServingMethod, old.get("serving_method", "client")),
        "ruleset": validate_ruleset(ruleset_raw),
        "hash_salt": hash_salt,
        "content_type": "feature_flag",
        "created": (base or {}).get("created", now),
        "modified": now,
        "enabled_at": (base or {}).get("enabled_at"),
        "deleted": None,
        "creator_name": (base or {}).get("creator_name", author),
        "last_modified_by_name": author,
        "can_edit": True,
    }
    if status == Status.ENABLED and (base is None or base.get("status") != Status.ENABLED):
        doc["enabled_at"] = now
    return doc


class FlagService:
    """The App API's operations on one project's flags."""

    def __init__(self, catalog: Catalog, project: Project, author: str | None = None) -> None:
        self.store = FlagStore(catalog)
        self.project = project
        self.author = author

    def list_flags(self, include_archived: bool) -> list[dict[str, Any]]:
        docs = self.store.docs(self.project.id)
        return [d for d in docs if include_archived or d.get("status") != Status.ARCHIVED]

    def get(self, flag_id: str) -> dict[str, Any]:
        doc = self.store.get(self.project.id, flag_id)
        if doc is None:
            raise NotFound(f"Feature flag not found for id {flag_id}")
        return doc

    def create(self, body: Any) -> dict[str, Any]:
        if len(self.store.docs(self.project.id)) >= MAX_FLAGS_PER_PROJECT:
            raise BadRequest(f"a project may hold at most {MAX_FLAGS_PER_PROJECT} feature flags")
        doc = build_document(self.project, body, base=None, author=self.author)
        if self.store.get(self.project.id, doc["id"]) is not None:
            raise BadRequest(f"A feature flag with id {doc['id']!r} already exists")
        self.store.put(self.project.id, [doc])
        return doc

    def replace(self, flag_id: str, body: Any, *, partial: bool) -> dict[str, Any]:
        base = self.get(flag_id)
        doc = build_document(self.project, body, base=base, author=self.author, partial=partial)
        self.store.put(self.project.id, [doc])
        return doc

    def set_status(self, flag_id: str, status: Status) -> dict[str, Any]:
        base = self.get(flag_id)
        return self.replace(flag_id, {**base, "status": status.value}, partial=True)

    def set_test_users(self, flag_id: str, body: Any) -> dict[str, Any]:
        """Body `{"users": {variant key: distinct id}}` (mixpanel-headless' SetTestUsersParams)."""
        base = self.get(flag_id)
        if not isinstance(body, dict) or not isinstance(body.get("users"), dict):
            raise BadRequest('the body must be {"users": {"<variant key>": "<distinct id>"}}')
        keys = {v.get("key") for v in base["ruleset"]["variants"]}
        users: dict[str, str] = {}
        for variant, distinct_id in body["users"].items():
            if variant not in keys:
                raise BadRequest(f"unknown variant {variant!r}")
            if not isinstance(distinct_id, str) or not distinct_id:
                raise BadRequest("test users are distinct ids (non-empty strings)")
            users[distinct_id] = variant
        ruleset = {**base["ruleset"], "test": {"users": users}}
        return self.replace(flag_id, {"ruleset": ruleset}, partial=True)

    def delete(self, flag_id: str) -> None:
        if not self.store.delete(self.project.id, flag_id):
            raise NotFound(f"Feature flag not found for id {flag_id}")

    def import_definitions(self, payload: Any) -> list[dict[str, Any]]:
        """Flags in the `/flags/definitions` shape (`{"flags": [...]}` or a bare list), created or, when a
        flag with that key exists, replaced; ids, hash salts and statuses are kept so assignment is
        unchanged. All or nothing."""
        flags = payload.get("flags") if isinstance(payload, dict) else payload
        if not isinstance(flags, list):
            raise BadRequest('expected {"flags": [...]} as /flags/definitions returns it')
        docs, keys = [], set()
        for i, raw in enumerate(flags):
            if not isinstance(raw, dict):
                raise BadRequest(f"flags[{i}] must be an object")
            existing = self.store.by_key(self.project.id, str(raw.get("key")))
            body = {"status": Status.ENABLED.value, "hash_salt": None, **raw}
            try:
                doc = build_document(self.project, body, base=existing, author=self.author, partial=True)
            except BadRequest as exc:
                raise BadRequest(f"flags[{i}] ({raw.get('key')!r}): {exc.message}") from exc
            if doc["key"] in keys:
                raise BadRequest(f"flags[{i}]: key {doc['key']!r} appears twice")
            keys.add(doc["key"])
            docs.append(doc)
        if len(self.store.docs(self.project.id)) + len(docs) > MAX_FLAGS_PER_PROJECT:
            raise BadRequest(f"a project may hold at most {MAX_FLAGS_PER_PROJECT} feature flags")
        self.store.put(self.project.id, docs)
        return docs
