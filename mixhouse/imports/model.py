"""Warehouse sources and imports, and the rules for the bodies that create and change them
(https://developer.mixpanel.com/reference/warehouse-connectors-api, docs/warehouse-imports.md).

Pure rules: no HTTP, no SQL. A bad body raises BadRequest with a message naming the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mixhouse.errors import BadRequest


class SourceType(StrEnum):
    POSTGRES = "postgres"
    DUCKDB = "duckdb"  # a DuckDB database file
    PARQUET = "parquet"  # a folder of Parquet files


class ImportType(StrEnum):
    EVENT_STREAM = "event_stream"
    PEOPLE = "people"
    GROUPS = "groups"
    LOOKUP_TABLE = "lookup_table"


class SyncMode(StrEnum):
    TIME_BASED = "time_based"
    MIRROR_MODE = "mirror_mode"
    FULL_SYNC = "full_sync"
    ONE_TIME = "one_time"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


HOUR_NS = 3_600_000_000_000
RUN_EVERY_NS = (0, HOUR_NS, 24 * HOUR_NS, 7 * 24 * HOUR_NS)  # API-triggered only, hourly, daily, weekly
HISTORY_RUNS = 30  # "Returns 30 most recent events" (the history endpoint)

# The path segment after /imports/ that creates each type.
CREATE_PATHS: dict[str, ImportType] = {
    "event-stream": ImportType.EVENT_STREAM,
    "people": ImportType.PEOPLE,
    "groups": ImportType.GROUPS,
    "lookup-table": ImportType.LOOKUP_TABLE,
}

# Sync modes each type accepts (Mixpanel: full syncs are for profiles, groups and lookup tables; lookup
# tables are replaced whole, so only full_sync and one_time).
MODES: dict[ImportType, tuple[SyncMode, ...]] = {
    ImportType.EVENT_STREAM: (SyncMode.TIME_BASED, SyncMode.MIRROR_MODE, SyncMode.ONE_TIME),
    ImportType.PEOPLE: tuple(SyncMode),
    ImportType.GROUPS: tuple(SyncMode),
    ImportType.LOOKUP_TABLE: (SyncMode.FULL_SYNC, SyncMode.ONE_TIME),
}

# Required fields of each create body, beside import_type, warehouse_source_id, table_params, sync_mode.
REQUIRED: dict[ImportType, tuple[str, ...]] = {
    ImportType.EVENT_STREAM: ("time_column_name",),
    ImportType.PEOPLE: ("user_column_name",),
    ImportType.GROUPS: ("group_key", "group_id_column"),
    ImportType.LOOKUP_TABLE: ("mixpanel_property", "property_key_column_name"),
}
# Optional column-name fields of each type.
OPTIONAL_COLUMNS: dict[ImportType, tuple[str, ...]] = {
    ImportType.EVENT_STREAM: (
        "event_column_name",
        "user_column_name",
        "company_column_name",
        "device_column_name",
        "json_properties_column_name",
        "insert_time_column_name",
    ),
    ImportType.PEOPLE: ("json_properties_column_name", "insert_time_column_name"),
    ImportType.GROUPS: ("json_properties_column_name", "insert_time_column_name"),
    ImportType.LOOKUP_TABLE: (),
}

MAX_NAME_CHARS = 255
_IDENT = re.compile(r"[^\x00]{1,255}")


@dataclass(frozen=True)
class WarehouseSource:
    id: int
    project_id: int
    type: SourceType
    name: str
    params: Mapping[str, Any]  # host, port, database, user (postgres); path (duckdb, parquet)
    password: str | None  # kept, never shown
    created: float

    def shown(self) -> dict[str, Any]:
        """The source as the API shows it: every parameter but the password."""
        return {
            "id": self.id,
            "type": self.type.value,
            "name": self.name,
            **dict(self.params),
            "password_set": self.password is not None,
            "created": _iso(self.created),
        }


@dataclass(frozen=True)
class WarehouseImport:
    id: int
    project_id: int
    import_type: ImportType
    sync_mode: SyncMode
    source_id: int
    source_type: SourceType
    table_params: Mapping[str, Any]
    config: Mapping[str, Any]  # the type's column names, event_name, property_mappings, group_key, ...
    paused: bool
    run_every: int  # nanoseconds
    created: float
    creator_id: int | None
    creator_name: str
    next_run: float | None  # epoch seconds; None: not scheduled
    last_dispatch: float | None
    cursor: Any = None  # time_based: the largest insert time seen (JSON: {"type", "value"})
    lookup_table_id: str | None = None
    is_deleted: bool = False

    def shown(self) -> dict[str, Any]:
        """WarehouseImportDetail of the API."""
        detail: dict[str, Any] = {
            "id": self.id,
            "import_type": self.import_type.value,
            "sync_mode": self.sync_mode.value,
            "created": _iso(self.created),
            "creator_id": self.creator_id,
            "creator_name": self.creator_name,
            "creator_email": "",
            "warehouse_source_id": self.source_id,
            "table_params": dict(self.table_params),
            "paused": self.paused,
            "run_every": self.run_every,
            "last_dispatch": None if self.last_dispatch is None else int(self.last_dispatch),
            "is_deleted": self.is_deleted,
        }
        for name in (
            "event_name",
            "event_column_name",
            "time_column_name",
            "user_column_name",
            "insert_time_column_name",
            "group_key",
            "group_id_column",
        ):
            detail[name] = self.config.get(name)
        detail["property_mappings"] = self.config.get("property_mappings")
        detail["databricks_params"] = None
        for name in ("device_column_name", "json_properties_column_name", "company_column_name"):
            if name in self.config:
                detail[name] = self.config[name]
        if self.import_type is ImportType.LOOKUP_TABLE:
            detail["mixpanel_property"] = self.config.get("mixpanel_property")
            detail["property_key_column_name"] = self.config.get("property_key_column_name")
            detail["lookup_table_id"] = self.lookup_table_id
        return detail


@dataclass(frozen=True)
class ImportRun:
    id: str  # the job's id (results.run_id of manual-sync)
    import_id: int
    status: RunStatus
    start_time: float
    end_time: float | None
    num_events_imported: int | None
    error: str | None = None

    def shown(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "start_time": int(self.start_time),
            "end_time": None if self.end_time is None else int(self.end_time),
            "num_events_imported": self.num_events_imported,
        }


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- bodies -------------------------------------------------------------------------------------------


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        raise BadRequest("request body must be a JSON object")
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _name(body: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not isinstance(value, str) or not _IDENT.fullmatch(value) or not value.strip():
        raise BadRequest(f"{key} must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    return value


def run_every_of(value: Any, *, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value not in RUN_EVERY_NS:
        allowed = ", ".join(str(v) for v in RUN_EVERY_NS)
        raise BadRequest(f"run_every must be one of {allowed} (nanoseconds), got {value!r}")
    return value


def _table_params(value: Any, source_type: SourceType) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("table_params must be a JSON object")
    allowed = {"table_name", "schema_name"} if source_type is not SourceType.PARQUET else {"table_name"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise BadRequest(f"table_params: unknown parameter {unknown[0]!r} for a {source_type.value} source")
    params = {"table_name": _name(value, "table_name", required=True)}
    if "schema_name" in value:
        params["schema_name"] = _name(value, "schema_name", required=True)
    return params


@dataclass(frozen=True)
class ImportSpec:
    """A valid create body."""

    import_type: ImportType
    sync_mode: SyncMode
    source_id: int
    table_params: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    run_every: int = 0


def source_id_of(body: Any) -> int:
    body = _body(body)
    source_id = body.get("warehouse_source_id")
    if isinstance(source_id, bool) or not isinstance(source_id, int):
        raise BadRequest("warehouse_source_id is required and must be an integer")
    return source_id


def parse_create(import_type: ImportType, body: Any, source_type: SourceType) -> ImportSpec:
    """The create body of `import_type` (already checked: `warehouse_source_id` names a source of this type)."""
    body = _body(body)
    sent_type = body.get("import_type")
    if sent_type != import_type.value:
        raise BadRequest(f"import_type must be {import_type.value!r}, got {sent_type!r}")
    if "table_params" not in body:
        raise BadRequest("table_params is required")
    table_params = _table_params(body["table_params"], source_type)
    raw_mode = body.get("sync_mode")
    if raw_mode is None:
        raise BadRequest("sync_mode is required")
    modes = MODES[import_type]
    if raw_mode not in [m.value for m in modes]:
        raise BadRequest(
            f"sync_mode must be one of {', '.join(m.value for m in modes)} for a {import_type.value} import, got {raw_mode!r}"
        )
    sync_mode = SyncMode(raw_mode)
    config: dict[str, Any] = {}
    for key in REQUIRED[import_type]:
        if key == "mixpanel_property":
            config[key] = _mixpanel_property(body.get(key))
        else:
            config[key] = _name(body, key, required=True)
    for key in OPTIONAL_COLUMNS[import_type]:
        value = _name(body, key, required=False)
        if value is not None:
            config[key] = value
    if import_type is ImportType.EVENT_STREAM:
        event_name = _name(body, "event_name", required=False)
        if (event_name is None) == ("event_column_name" not in config):
            raise BadRequest("give exactly one of event_name and event_column_name")
        if event_name is not None:
            config["event_name"] = event_name
    if sync_mode is SyncMode.TIME_BASED and "insert_time_column_name" not in config:
        raise BadRequest("insert_time_column_name is required with sync_mode time_based")
    mappings = body.get("property_mappings")
    if mappings is not None:
        if not isinstance(mappings, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v and len(v) <= MAX_NAME_CHARS
            for k, v in mappings.items()
        ):
            raise BadRequest("property_mappings must be an object of column name to property name (strings)")
        config["property_mappings"] = dict(mappings)
    if body.get("databricks_params") is not None:
        raise BadRequest("databricks_params is only for Databricks sources")
    run_every = 0 if sync_mode is SyncMode.ONE_TIME else run_every_of(body.get("run_every"), default=0)
    if sync_mode is SyncMode.ONE_TIME and body.get("run_every") not in (None, 0):
        raise BadRequest("a one_time import runs once: run_every must be 0 or absent")
    return ImportSpec(import_type, sync_mode, source_id_of(body), table_params, config, run_every)


def _mixpanel_property(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("mixpanel_property is required and must be an object with value and resourceType")
    name = _name(value, "value", required=True)
    resource = value.get("resourceType")
    if resource not in ("event", "user"):
        raise BadRequest(f"mixpanel_property.resourceType must be 'event' or 'user', got {resource!r}")
    custom = value.get("customPropertyId")
    if custom is not None and (isinstance(custom, bool) or not isinstance(custom, int)):
        raise BadRequest("mixpanel_property.customPropertyId must be an integer or null")
    return {"value": name, "resourceType": resource, "customPropertyId": custom}


@dataclass(frozen=True)
class Patch:
    paused: bool
    run_every: int | None


def parse_patch(body: Any) -> Patch:
    body = _body(body)
    unknown = sorted(set(body) - {"paused", "run_every", "databricks_params"})
    if unknown:
        raise BadRequest(f"{unknown[0]} cannot be changed (patchable: paused, run_every)")
    paused = body.get("paused")
    if not isinstance(paused, bool):
        raise BadRequest("paused is required and must be true or false")
    if body.get("databricks_params") is not None:
        raise BadRequest("databricks_params is only for Databricks sources")
    run_every = None if "run_every" not in body else run_every_of(body["run_every"])
    return Patch(paused, run_every)


def parse_delete(body: Any) -> bool:
    """`delete_data` of a delete body (optional)."""
    if body is None:
        return False
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    value = body.get("delete_data", False)
    if not isinstance(value, bool):
        raise BadRequest("delete_data must be true or false")
    return value


# -- sources ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    type: SourceType
    name: str
    params: dict[str, Any]
    password: str | None


_SOURCE_FIELDS: dict[SourceType, tuple[str, ...]] = {
    SourceType.POSTGRES: ("host", "port", "database", "user", "password", "sslmode"),
    SourceType.DUCKDB: ("path",),
    SourceType.PARQUET: ("path",),
}


def parse_source(body: Any) -> SourceSpec:
    body = _body(body)
    raw_type = body.get("type")
    if raw_type not in [t.value for t in SourceType]:
        raise BadRequest(f"type must be one of {', '.join(t.value for t in SourceType)}, got {raw_type!r}")
    source_type = SourceType(raw_type)
    name = _name(body, "name", required=False) or source_type.value
    unknown = sorted(set(body) - {"type", "name", *_SOURCE_FIELDS[source_type]})
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r} for a {source_type.value} source")
    params: dict[str, Any] = {}
    password = None
    if source_type is SourceType.POSTGRES:
        for key in ("host", "database", "user"):
            params[key] = _name(body, key, required=True)
        port = body.get("port", 5432)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise BadRequest(f"port must be a port number (1-65535), got {port!r}")
        params["port"] = port
        sslmode = body.get("sslmode", "prefer")
        if sslmode not in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
            raise BadRequest(f"sslmode must be a libpq sslmode, got {sslmode!r}")
        params["sslmode"] = sslmode
        raw_password = body.get("password")
        if raw_password is not None and not isinstance(raw_password, str):
            raise BadRequest("password must be a string")
        password = raw_password
    else:
        params["path"] = _name(body, "path", required=True)
    return SourceSpec(source_type, name, params, password)
