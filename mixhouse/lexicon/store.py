"""Lexicon schemas in the catalog database, beside the projects they describe.

One row per (project, entity type, name), the schemaJson as sent, plus its `hidden` and `dropped`
flags as columns so that ingestion and discovery read them with one indexed query (no JSON parsing on
the hot path). A write replaces a row whole, in one transaction with any truncation it comes with:
a bulk request is applied entirely or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeAlias

import orjson

from mixhouse.catalogdb import Connection
from mixhouse.domain.catalog import CatalogStore
from mixhouse.errors import BadRequest
from mixhouse.lexicon.model import PatchEntry, SchemaEntry, merge_patch, validate_schema

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lexicon_schemas (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    entity_type TEXT NOT NULL,
    name        TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    hidden      INTEGER NOT NULL,
    dropped     INTEGER NOT NULL,
    dropped_properties TEXT NOT NULL DEFAULT '[]',  -- JSON list: properties removed at ingestion
    updated_at  REAL NOT NULL,
    PRIMARY KEY (project_id, entity_type, name)
);
"""

EVENT_TYPES = ("event", "custom_event")

# Per patch: (patch, the merged schema stored, None) or (patch, None, why it was not applied).
PatchOutcomes: TypeAlias = list[tuple[PatchEntry, SchemaEntry | None, str | None]]


class SchemaStore(CatalogStore):
    schema = _SCHEMA

    def list(self, project_id: int, entity_type: str | None = None) -> list[SchemaEntry]:
        where = "project_id = ?"
        args: list[object] = [project_id]
        if entity_type is not None:
            where += " AND entity_type = ?"
            args.append(entity_type)
        rows = self._conn.execute(
            f"SELECT entity_type, name, schema_json FROM lexicon_schemas WHERE {where} ORDER BY entity_type, name", args
        ).fetchall()
        return [SchemaEntry(str(t), str(n), orjson.loads(s)) for t, n, s in rows]

    def get(self, project_id: int, entity_type: str, name: str) -> SchemaEntry | None:
        row = self._conn.execute(
            "SELECT schema_json FROM lexicon_schemas WHERE project_id = ? AND entity_type = ? AND name = ?",
            (project_id, entity_type, name),
        ).fetchone()
        return SchemaEntry(entity_type, name, orjson.loads(row[0])) if row else None

    def count(self, project_id: int, entity_type: str | None = None, name: str | None = None) -> int:
        where = "project_id = ?"
        args: list[object] = [project_id]
        if entity_type is not None:
            where += " AND entity_type = ?"
            args.append(entity_type)
        if name is not None:
            where += " AND name = ?"
            args.append(name)
        return int(self._conn.execute(f"SELECT COUNT(*) FROM lexicon_schemas WHERE {where}", args).fetchone()[0])

    def write(
        self,
        project_id: int,
        entries: Sequence[SchemaEntry],
        *,
        truncate: bool = False,
        truncate_type: str | None = None,
    ) -> tuple[int, int]:
        """Create or replace `entries` (after deleting every schema of the project, or of `truncate_type`,
        if `truncate`), in one transaction. Returns (added, deleted)."""
        with self._write() as conn:
            deleted = 0
            if truncate and truncate_type is None:
                deleted = conn.execute("DELETE FROM lexicon_schemas WHERE project_id = ?", (project_id,)).rowcount
            elif truncate:
                deleted = conn.execute(
                    "DELETE FROM lexicon_schemas WHERE project_id = ? AND entity_type = ?", (project_id, truncate_type)
                ).rowcount
            self._upsert(conn, project_id, entries)
        return len(entries), max(deleted, 0)

    @staticmethod
    def _upsert(conn: Connection, project_id: int, entries: Sequence[SchemaEntry]) -> None:
        now = time.time()
        conn.executemany(
            "INSERT INTO lexicon_schemas (project_id, entity_type, name, schema_json, hidden, dropped,"
            " updated_at, dropped_properties) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, entity_type, name) DO UPDATE SET schema_json = excluded.schema_json,"
            " hidden = excluded.hidden, dropped = excluded.dropped, updated_at = excluded.updated_at,"
            " dropped_properties = excluded.dropped_properties",
            [
                (
                    project_id,
                    e.entity_type,
                    e.name,
                    orjson.dumps(e.schema).decode(),
                    int(e.hidden),
                    int(e.dropped),
                    now,
                    orjson.dumps(sorted(e.properties_flagged("dropped"))).decode(),
                )
                for e in entries
            ],
        )

    def patch(self, project_id: int, patches: Sequence[PatchEntry]) -> PatchOutcomes:
        """Merge each patch into its stored schema (model.merge_patch) and store the valid results, in one
        transaction (no other write between a read and its write). Per patch: (patch, merged schema,
        None) or (patch, None, why it was not applied: no such schema, or the result is invalid)."""
        out: PatchOutcomes = []
        with self._write() as conn:
            merged: list[SchemaEntry] = []
            for p in patches:
                row = conn.execute(
                    "SELECT schema_json FROM lexicon_schemas WHERE project_id = ? AND entity_type = ? AND name = ?",
                    (project_id, p.entity_type, p.name),
                ).fetchone()
                if row is None:
                    out.append((p, None, f"no {p.entity_type} schema named {p.name!r} in this project"))
                    continue
                try:
                    schema = validate_schema(merge_patch(orjson.loads(row[0]), p.patch), p.entity_type)
                except BadRequest as exc:
                    out.append((p, None, exc.message))
                    continue
                entry = SchemaEntry(p.entity_type, p.name, schema)
                merged.append(entry)
                out.append((p, entry, None))
            self._upsert(conn, project_id, merged)
        return out

    def delete(self, project_id: int, entity_type: str | None = None, name: str | None = None) -> int:
        where = "project_id = ?"
        args: list[object] = [project_id]
        if entity_type is not None:
            where += " AND entity_type = ?"
            args.append(entity_type)
        if name is not None:
            where += " AND name = ?"
            args.append(name)
        return int(self._conn.execute(f"DELETE FROM lexicon_schemas WHERE {where}", args).rowcount)

    def event_names(self, project_id: int, flag: str) -> frozenset[str]:
        """Names of the project's event schemas with `flag` ("hidden" or "dropped") set."""
        assert flag in ("hidden", "dropped")
        rows = self._conn.execute(
            f"SELECT name FROM lexicon_schemas WHERE project_id = ? AND entity_type IN (?, ?) AND {flag} = 1",
            (project_id, *EVENT_TYPES),
        ).fetchall()
        return frozenset(str(r[0]) for r in rows)

    def drops(self, project_id: int) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
        """(event names dropped whole, event name -> properties dropped from it) of the project's event schemas."""
        rows = self._conn.execute(
            "SELECT name, dropped, dropped_properties FROM lexicon_schemas WHERE project_id = ?"
            " AND entity_type IN (?, ?) AND (dropped = 1 OR dropped_properties != '[]')",
            (project_id, *EVENT_TYPES),
        ).fetchall()
        events = frozenset(str(name) for name, dropped, _ in rows if dropped)
        properties = {str(name): frozenset(orjson.loads(props)) for name, dropped, props in rows if props != "[]"}
        return events, properties

    def has_any(self, project_id: int) -> bool:
        row = self._conn.execute("SELECT 1 FROM lexicon_schemas WHERE project_id = ? LIMIT 1", (project_id,)).fetchone()
        return row is not None
