"""User and group profile updates (https://developer.mixpanel.com/reference/profile-set, https://developer.mixpanel.com/reference/group-set-property): validation and the operations themselves.

An update carries one operation (several are applied in a fixed order when a lenient client sends
them together). Updates are applied in the order they arrive, within a request and across requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from mixhouse.domain import geolocation
from mixhouse.domain.project import Project
from mixhouse.errors import BadRequest
from mixhouse.geo import Locator

MAX_UPDATES = 2000
MAX_UPDATE_BYTES = 1024 * 1024  # "each update ≤ 1 MB" (https://developer.mixpanel.com/reference/profile-batch-update)
MAX_PROFILE_PROPERTIES = 2000  # per profile; an update cannot set more, a profile never holds more
MAX_NAME_CHARS = 255  # longer property names are cut, as Mixpanel truncates them
MAX_VALUE_BYTES = 256 * 1024  # a list or object property of a profile, as JSON
MAX_OBJECT_KEYS = 255  # per nested object
MAX_NESTING_DEPTH = 3  # objects within a property's value

# The order in which operations of one update object apply.
OPERATIONS = ("$set_once", "$set", "$add", "$append", "$union", "$remove", "$unset", "$delete")
_WRITES_PROPERTIES = frozenset({"$set_once", "$set", "$add", "$append", "$union", "$remove", "$unset"})


class ProfileError(BadRequest, ValueError):
    code = "invalid_profile_update"


@dataclass(frozen=True)
class ProfileUpdate:
    project_id: int
    key: tuple[str, ...]  # (distinct_id,) for users, (group_key, group_id) for groups
    operations: tuple[tuple[str, Any], ...]
    time_ms: int
    ignore_time: bool
    geo: tuple[tuple[str, str], ...] = ()  # $country_code, $region, $city from the update's address


@dataclass
class PreparedUpdates:
    updates: list[ProfileUpdate] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (index, message)


ProjectFor = Callable[[str], Project]


def _check_value(op: str, name: str, value: Any, depth: int = 0) -> None:
    """Mixpanel's limits on a profile property's value: objects nest at most 3 deep and hold at most 255
    keys each; a list or object property is at most 256 KB of JSON."""
    if isinstance(value, dict):
        if depth >= MAX_NESTING_DEPTH:
            raise ProfileError(f"{op}: '{name}' is invalid: objects nest at most {MAX_NESTING_DEPTH} deep")
        if len(value) > MAX_OBJECT_KEYS:
            raise ProfileError(f"{op}: '{name}' is invalid: objects hold at most {MAX_OBJECT_KEYS} keys")
        for item in value.values():
            _check_value(op, name, item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(op, name, item, depth)
    if depth == 0 and isinstance(value, dict | list) and len(orjson.dumps(value)) > MAX_VALUE_BYTES:
        raise ProfileError(f"{op}: '{name}' is invalid: list and object properties are at most {MAX_VALUE_BYTES} bytes")


def _truncated_names(value: dict[str, Any]) -> dict[str, Any]:
    if all(len(k) <= MAX_NAME_CHARS for k in value):
        return value
    return {k[:MAX_NAME_CHARS]: v for k, v in value.items()}


def _validate_operation(op: str, value: Any) -> None:
    if op in ("$set", "$set_once", "$add", "$append", "$union", "$remove") and not isinstance(value, dict):
        raise ProfileError(f"{op} must be a JSON object")
    if isinstance(value, dict) and op != "$remove":
        if len(value) > MAX_PROFILE_PROPERTIES:
            raise ProfileError(
                f"{op}: an update sets at most {MAX_PROFILE_PROPERTIES} properties, got {len(value)}"
                f" (a profile holds at most {MAX_PROFILE_PROPERTIES})"
            )
        for name, item in value.items():
            _check_value(op, name, item)
    if op == "$add":
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ProfileError(f"$add: value of {k!r} must be a number")
    if op == "$union":
        for k, v in value.items():
            if not isinstance(v, list):
                raise ProfileError(f"$union: value of {k!r} must be a list")
    if op == "$unset" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ProfileError("$unset must be a list of property names")


def prepare_updates(
    records: list[Any],
    project_for: ProjectFor,
    *,
    group: bool,
    received_ms: int,
    geo: Locator | None = None,
    request_ip: str | None = None,
    ip_param_off: bool = False,
) -> PreparedUpdates:
    """Validate every update; user profile updates also get their geolocation (mixhouse.domain.geolocation)."""
    out = PreparedUpdates()
    ips = [
        geolocation.profile_ip(r, request_ip, ip_param_off)
        if geo is not None and not group and isinstance(r, dict)
        else None
        for r in records
    ]
    locations = geolocation.locate_all(geo, ips)
    for index, record in enumerate(records):
        try:
            update = _prepare_one(record, project_for, group=group, received_ms=received_ms)
        except ProfileError as exc:
            out.failed.append((index, str(exc)))
            continue
        found = geolocation.properties(locations[index], geolocation.PROFILE_GEO)
        out.updates.append(replace(update, geo=tuple(found.items())) if found else update)
    return out


def _prepare_one(record: Any, project_for: ProjectFor, *, group: bool, received_ms: int) -> ProfileUpdate:
    if not isinstance(record, dict):
        raise ProfileError("each update must be a JSON object")
    try:
        size = len(orjson.dumps(record))
    except orjson.JSONEncodeError as exc:  # parses, but nests deeper than can be stored (orjson: 255)
        raise ProfileError("update is invalid: values nest too deeply") from exc
    if size > MAX_UPDATE_BYTES:
        raise ProfileError(f"update exceeds max size of {MAX_UPDATE_BYTES} bytes")
    token = record.get("$token")
    if not isinstance(token, str) or not token:
        raise ProfileError("$token, missing or empty")
    if group:
        group_key, group_id = record.get("$group_key"), record.get("$group_id")
        if not isinstance(group_key, str) or not group_key:
            raise ProfileError("$group_key, missing or empty")
        if group_id is None or group_id == "" or isinstance(group_id, dict | list | bool):
            raise ProfileError("$group_id, missing or empty")
        key: tuple[str, ...] = (group_key, str(group_id))
    else:
        distinct_id = record.get("$distinct_id")
        if distinct_id is None or distinct_id == "" or isinstance(distinct_id, dict | list | bool):
            raise ProfileError("$distinct_id, missing or empty")
        key = (str(distinct_id),)
    operations = tuple((op, record[op]) for op in OPERATIONS if op in record)
    if not operations:
        raise ProfileError(f"no operation given: expected one of {', '.join(OPERATIONS)}")
    for op, value in operations:
        _validate_operation(op, value)
    operations = tuple((op, _truncated_names(v) if isinstance(v, dict) else v) for op, v in operations)
    project = project_for(token)
    time_ms = received_ms
    raw_time = record.get("$time")
    if isinstance(raw_time, int | float) and not isinstance(raw_time, bool) and raw_time > 0:
        time_ms = int(raw_time) if raw_time >= 1e11 else int(raw_time * 1000)
    return ProfileUpdate(
        project_id=project.id,
        key=key,
        operations=operations,
        time_ms=min(time_ms, received_ms),
        ignore_time=record.get("$ignore_time") is True,
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def apply_update(current: dict[str, Any] | None, update: ProfileUpdate) -> dict[str, Any] | None:
    """The profile after the update; None when it is deleted or never existed."""
    props = dict(current) if current is not None else None
    wrote = False
    for op, value in update.operations:
        if op == "$delete":
            return None
        if props is None:
            if op in ("$unset", "$remove"):
                continue  # nothing to change, and these do not create a profile
            props = {}
        if op == "$set":
            props.update(value)
        elif op == "$set_once":
            for k, v in value.items():
                props.setdefault(k, v)
        elif op == "$add":
            for k, v in value.items():
                old = props.get(k, 0)
                if isinstance(old, int | float) and not isinstance(old, bool):
                    props[k] = old + v
        elif op == "$append":
            for k, v in value.items():
                if k == "$transactions" and isinstance(v, dict) and "$time" not in v:
                    # A charge without its time (the PyPI SDK's track_charge sends none) is dated by the update.
                    v = {**v, "$time": _iso_seconds(update.time_ms)}
                props[k] = [*_as_list(props.get(k)), v]
        elif op == "$union":
            for k, values in value.items():
                merged = _as_list(props.get(k))
                for v in values:
                    if v not in merged:
                        merged.append(v)
                props[k] = merged
        elif op == "$remove":
            for k, v in value.items():
                if isinstance(props.get(k), list):
                    props[k] = [x for x in props[k] if x != v]
        elif op == "$unset":
            for k in value:
                props.pop(k, None)
        wrote = wrote or op in _WRITES_PROPERTIES
    if props is None:
        return None
    if wrote and update.geo and "$geo_source" not in props:
        # Located by address, unless this update sets a location itself or it came from coordinates.
        explicit = {k for op, value in update.operations if op in ("$set", "$set_once") for k in value}
        for key, value in update.geo:
            if key not in explicit:
                props[key] = value
    if wrote and not update.ignore_time and len(update.key) == 1:
        props["$last_seen"] = _iso_seconds(update.time_ms)
    if len(props) > MAX_PROFILE_PROPERTIES:
        # Further additions fail: the properties the profile had before this update (and $last_seen) stay,
        # new ones past the limit are dropped (dicts keep insertion order: the old keys come first).
        kept = dict.fromkeys(k for k in (current or {}) if k in props)
        if "$last_seen" in props:
            kept["$last_seen"] = None
        for k in props:
            if len(kept) >= MAX_PROFILE_PROPERTIES:
                break
            kept.setdefault(k)
        props = {k: props[k] for k in list(kept)[:MAX_PROFILE_PROPERTIES]}
    return props


def _iso_seconds(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
