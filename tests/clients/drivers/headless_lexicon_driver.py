"""Drives the Lexicon calls of the unmodified PyPI `mixpanel-headless` 0.4.0 library against MP_API_BASE_URL
(run with its own venv's python; credentials from MP_USERNAME / MP_SECRET / MP_PROJECT_ID / MP_REGION).

Prints one JSON object: what each call returned, in order (later calls see what earlier ones wrote)."""

from __future__ import annotations

import json
import sys
from typing import Any

import mixpanel_headless as mp  # type: ignore[import-not-found]
from headless_driver import jsonable  # type: ignore[import-not-found]

PURCHASE = {
    "description": "User completes a purchase",
    "properties": {"amount": {"type": "number", "description": "Purchase amount"}},
    "metadata": {"com.mixpanel": {"displayName": "Purchase", "tags": ["revenue"]}},
}
SIGNUP = {"properties": {"plan": {"type": "string"}}, "metadata": {"com.mixpanel": {"hidden": True}}}
USER = {"properties": {"$email": {"type": "string"}}}


def main() -> None:
    ws = mp.Workspace()
    out: dict[str, Any] = {}
    calls: dict[str, Any] = {
        "create_schema": lambda: ws.create_schema("event", "Purchase", PURCHASE),
        "create_schemas_bulk": lambda: ws.create_schemas_bulk(
            mp.BulkCreateSchemasParams(
                entries=[
                    mp.SchemaEntry(entity_type="event", name="Signed Up", schema_definition=SIGNUP),
                    mp.SchemaEntry(entity_type="profile", name="$user", schema_definition=USER),
                ]
            )
        ),
        "list_schema_registry": lambda: ws.list_schema_registry(),
        "list_schema_registry_events": lambda: ws.list_schema_registry(entity_type="event"),
        "lexicon_schemas": lambda: ws.lexicon_schemas(),
        "lexicon_schema": lambda: ws.lexicon_schema("event", "Purchase"),
        "update_schema": lambda: ws.update_schema("event", "Purchase", {"properties": {"tax": {"type": "number"}}}),
        "update_schemas_bulk": lambda: ws.update_schemas_bulk(
            mp.BulkCreateSchemasParams(
                entries=[
                    mp.SchemaEntry(entity_type="event", name="Signed Up", schema_definition={"description": "Joined"}),
                    mp.SchemaEntry(entity_type="event", name="Nope", schema_definition={"description": "x"}),
                ]
            )
        ),
        "events_after_hiding": lambda: ws.events(),
        "delete_one": lambda: ws.delete_schemas(entity_type="event", entity_name="Purchase"),
        "delete_profiles": lambda: ws.delete_schemas(entity_type="profile"),
        "list_after_delete": lambda: ws.list_schema_registry(),
        "truncate": lambda: ws.create_schemas_bulk(
            mp.BulkCreateSchemasParams(
                entries=[mp.SchemaEntry(entity_type="event", name="Purchase", schema_definition=PURCHASE)],
                truncate=True,
                entity_type="event",
            )
        ),
        "list_after_truncate": lambda: ws.list_schema_registry(),
        "invalid": lambda: ws.create_schema("event", "Bad", {"properties": {"x": {"type": "text"}}}),
    }
    for name, call in calls.items():
        try:
            out[name] = jsonable(call())
        except Exception as exc:  # reported per call, so one refused call does not hide the others
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
