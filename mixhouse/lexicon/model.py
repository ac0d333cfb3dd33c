"""SchemaEntry and Schema as Mixpanel's Lexicon Schemas API defines them
(https://developer.mixpanel.com/reference/lexicon-schemas-api), checked strictly: every object has a
closed set of keys (`additionalProperties: false` at each level), so an unknown key is a 400 that names
it and where it is, never silently stored.

    SchemaEntry = {"entityType": "event" | "custom_event" | "profile", "name": str, "schemaJson": Schema}
    Schema      = {"description": str, "properties": {NAME: Property}, "metadata": {"com.mixpanel": {...}}}
    Property    = {"type": "array|boolean|integer|null|number|object|string" (required), "description",
                   "metadata": {"com.mixpanel": {"displayName", "hidden", "dropped"}}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mixhouse.errors import BadRequest

ENTITY_TYPES = ("event", "custom_event", "profile")
PROPERTY_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
MAX_NAME_LENGTH = 255
MAX_TEXT_LENGTH = 10_000  # descriptions and display names

_SCHEMA_KEYS = frozenset({"description", "properties", "metadata"})
_PROPERTY_KEYS = frozenset({"type", "description", "metadata"})
_METADATA_KEYS = frozenset({"com.mixpanel"})
_SCHEMA_MIXPANEL_KEYS = frozenset({"$source", "displayName", "tags", "hidden", "dropped", "contacts", "teamContacts"})
_PROPERTY_MIXPANEL_KEYS = frozenset({"displayName", "hidden", "dropped"})
_ENTRY_KEYS = frozenset({"entityType", "name", "schemaJson"})


@dataclass(frozen=True)
class SchemaEntry:
    entity_type: str
    name: str
    schema: dict[str, Any]  # validated schemaJson, stored as sent

    def as_json(self) -> dict[str, Any]:
        return {"entityType": self.entity_type, "name": self.name, "schemaJson": self.schema}

    @property
    def items(self) -> int:
        """What it counts against "events and properties updated per minute": itself and its properties."""
        return 1 + len(self.schema.get("properties", {}))

    def _flag(self, name: str) -> bool:
        return bool(self.schema.get("metadata", {}).get("com.mixpanel", {}).get(name, False))

    @property
    def hidden(self) -> bool:
        return self._flag("hidden")

    @property
    def dropped(self) -> bool:
        return self._flag("dropped")

    def properties_flagged(self, flag: str) -> set[str]:
        return {
            name
            for name, prop in self.schema.get("properties", {}).items()
            if prop.get("metadata", {}).get("com.mixpanel", {}).get(flag, False)
        }


def _closed(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise BadRequest(f"{where}: unknown key {names} (allowed: {', '.join(sorted(allowed))})")
    return value


def _text(value: Any, where: str, limit: int = MAX_TEXT_LENGTH) -> None:
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string")
    if len(value) > limit:
        raise BadRequest(f"{where} is longer than {limit} characters")


def _flag(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise BadRequest(f"{where} must be true or false")


def _strings(value: Any, where: str, *, emails: bool = False) -> None:
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a list of strings")
    for i, item in enumerate(value):
        _text(item, f"{where}[{i}]", MAX_NAME_LENGTH)
        if emails and "@" not in item.strip("@"):
            raise BadRequest(f"{where}[{i}] must be an email address, got {item!r}")


def _mixpanel_metadata(value: Any, allowed: frozenset[str], where: str) -> None:
    metadata = _closed(value, _METADATA_KEYS, where)
    if "com.mixpanel" not in metadata:
        return
    inner = _closed(metadata["com.mixpanel"], allowed, f"{where}.com.mixpanel")
    at = f"{where}.com.mixpanel"
    for key, item in inner.items():
        if key in ("hidden", "dropped"):
            _flag(item, f"{at}.{key}")
        elif key in ("tags", "teamContacts"):
            _strings(item, f"{at}.{key}")
        elif key == "contacts":
            _strings(item, f"{at}.{key}", emails=True)
        else:
            _text(item, f"{at}.{key}")


def validate_schema(value: Any, entity_type: str, where: str = "schemaJson") -> dict[str, Any]:
    schema = _closed(value, _SCHEMA_KEYS, where)
    if "description" in schema:
        _text(schema["description"], f"{where}.description")
    if "metadata" in schema:
        _mixpanel_metadata(schema["metadata"], _SCHEMA_MIXPANEL_KEYS, f"{where}.metadata")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise BadRequest(f"{where}.properties must be a JSON object of property name -> property schema")
    for name, prop in properties.items():
        at = f"{where}.properties[{name!r}]"
        if not name or len(name) > MAX_NAME_LENGTH:
            raise BadRequest(f"{where}.properties: a property name must have 1 to {MAX_NAME_LENGTH} characters")
        fields = _closed(prop, _PROPERTY_KEYS, at)
        if "type" not in fields:
            raise BadRequest(f"{at}.type is required (one of {', '.join(PROPERTY_TYPES)})")
        if fields["type"] not in PROPERTY_TYPES:
            raise BadRequest(f"{at}.type must be one of {', '.join(PROPERTY_TYPES)}, got {fields['type']!r}")
        if "description" in fields:
            _text(fields["description"], f"{at}.description")
        if "metadata" in fields:
            _mixpanel_metadata(fields["metadata"], _PROPERTY_MIXPANEL_KEYS, f"{at}.metadata")
    entry = SchemaEntry(entity_type, "", schema)
    if entity_type == "profile" and (entry.dropped or entry.properties_flagged("dropped")):
        raise BadRequest(f"{where}: dropped applies to events only (profile schemas cannot drop data)")
    return schema


def parse_entity_type(value: Any, where: str = "entityType") -> str:
    if value not in ENTITY_TYPES:
        raise BadRequest(f"{where} must be one of {', '.join(ENTITY_TYPES)}, got {value!r}")
    return str(value)


def parse_name(value: Any, where: str = "name") -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where} must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise BadRequest(f"{where} is longer than {MAX_NAME_LENGTH} characters")
    return value


def parse_entry(value: Any, where: str) -> SchemaEntry:
    entry = _closed(value, _ENTRY_KEYS, where)
    missing = sorted(_ENTRY_KEYS - set(entry))
    if missing:
        raise BadRequest(
            f"{where}: missing {', '.join(missing)} (a schema entry needs entityType, name and schemaJson)"
        )
    entity_type = parse_entity_type(entry["entityType"], f"{where}.entityType")
    name = parse_name(entry["name"], f"{where}.name")
    return SchemaEntry(entity_type, name, validate_schema(entry["schemaJson"], entity_type, f"{where}.schemaJson"))


@dataclass(frozen=True)
class BulkRequest:
    entries: list[SchemaEntry]
    truncate: bool
    truncate_type: str | None  # with `entityType`, truncate deletes only schemas of that type


def parse_bulk(body: Any) -> BulkRequest:
    """POST /schemas: `{"entries": [SchemaEntry...], "truncate": false, "entityType": optional}`."""
    request = _closed(body, frozenset({"entries", "truncate", "entityType"}), "request body")
    if "entries" not in request:
        raise BadRequest("request body: missing entries")
    entries = request["entries"]
    if not isinstance(entries, list):
        raise BadRequest("entries must be a list of schema entries")
    truncate = request.get("truncate", False)
    if not isinstance(truncate, bool):
        raise BadRequest("truncate must be true or false")
    truncate_type = parse_entity_type(request["entityType"]) if "entityType" in request else None
    parsed = [parse_entry(e, f"entries[{i}]") for i, e in enumerate(entries)]
    if truncate_type is not None:
        for i, entry in enumerate(parsed):
            if entry.entity_type != truncate_type:
                raise BadRequest(
                    f"entries[{i}].entityType is {entry.entity_type!r}, the request's entityType {truncate_type!r}"
                )
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(parsed):
        key = (entry.entity_type, entry.name)
        if key in seen:
            raise BadRequest(f"entries[{i}]: {entry.entity_type} {entry.name!r} appears twice in this request")
        seen.add(key)
    return BulkRequest(parsed, truncate, truncate_type)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch (https://www.rfc-editor.org/rfc/rfc7396): objects merge key by key, a
    `null` removes the key, anything else (lists included) replaces the value."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


@dataclass(frozen=True)
class PatchEntry:
    """One entry of a PATCH: a partial schemaJson to merge into the stored schema."""

    entity_type: str
    name: str
    patch: dict[str, Any]

    @property
    def items(self) -> int:
        properties = self.patch.get("properties")
        return 1 + (len(properties) if isinstance(properties, dict) else 0)


def parse_patch_entry(value: Any, where: str) -> PatchEntry:
    entry = _closed(value, _ENTRY_KEYS, where)
    missing = sorted(_ENTRY_KEYS - set(entry))
    if missing:
        raise BadRequest(
            f"{where}: missing {', '.join(missing)} (a schema entry needs entityType, name and schemaJson)"
        )
    entity_type = parse_entity_type(entry["entityType"], f"{where}.entityType")
    name = parse_name(entry["name"], f"{where}.name")
    if not isinstance(entry["schemaJson"], dict):
        raise BadRequest(f"{where}.schemaJson must be a JSON object (the part of the schema to change)")
    return PatchEntry(entity_type, name, entry["schemaJson"])


def parse_patch_bulk(body: Any) -> list[Any]:
    """PATCH /schemas: `{"entries": [...], "entityType": optional, "truncate": false}`; the raw entries
    (each is checked on its own: a bad one fails alone)."""
    request = _closed(body, frozenset({"entries", "truncate", "entityType"}), "request body")
    if "entries" not in request:
        raise BadRequest("request body: missing entries")
    if request.get("truncate", False) is not False:
        raise BadRequest("truncate cannot be used with PATCH, which merges into existing schemas (use POST)")
    if "entityType" in request:
        parse_entity_type(request["entityType"])
    entries = request["entries"]
    if not isinstance(entries, list):
        raise BadRequest("entries must be a list of schema entries")
    return entries
