"""Lookup tables in the catalog database. A replace is one transaction: readers see the old
rows or the new ones, never a mix, and a failed upload changes nothing."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from mixhouse.catalogdb import IntegrityError
from mixhouse.domain.catalog import CatalogStore
from mixhouse.errors import BadRequest
from mixhouse.lookup.csvtable import Table

MAX_NAME_CHARS = 255

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lookup_tables (
    id          TEXT PRIMARY KEY,    -- a UUID, as Mixpanel's
    project_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    columns     TEXT NOT NULL,       -- JSON list of the header's names ([] before the first upload)
    row_count   INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS lookup_rows (
    table_id    TEXT NOT NULL REFERENCES lookup_tables (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,       -- the first column's value
    position    INTEGER NOT NULL,    -- order in the upload
    "values"    TEXT NOT NULL,       -- JSON object of typed values (csvtable.typed)
    PRIMARY KEY (table_id, key)
);
CREATE TABLE IF NOT EXISTS lookup_replacements (
    project_id  INTEGER NOT NULL,
    at          REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lookup_replacements_by_project ON lookup_replacements (project_id, at);
CREATE TABLE IF NOT EXISTS lookup_mappings (
    project_id  INTEGER NOT NULL,
    source      TEXT NOT NULL,       -- 'event' or 'user': whose property is mapped
    property    TEXT NOT NULL,
    table_id    TEXT NOT NULL,
    PRIMARY KEY (project_id, source, property)
);
"""

MAPPING_SOURCES = ("event", "user")


@dataclass(frozen=True)
class LookupTable:
    id: str
    project_id: int
    name: str
    columns: tuple[str, ...]
    row_count: int
    created_at: float
    updated_at: float


def _table(row: tuple[Any, ...]) -> LookupTable:
    return LookupTable(
        str(row[0]), int(row[1]), str(row[2]), tuple(orjson.loads(row[3])), int(row[4]), float(row[5]), float(row[6])
    )


_SELECT = "SELECT id, project_id, name, columns, row_count, created_at, updated_at FROM lookup_tables"


class LookupStore(CatalogStore):
    schema = _SCHEMA

    def create(self, project_id: int, name: str) -> LookupTable:
        now = time.time()
        table_id = str(uuid.uuid4())
        try:
            self._conn.execute(
                "INSERT INTO lookup_tables VALUES (?, ?, ?, '[]', 0, ?, ?)", [table_id, project_id, name, now, now]
            )
        except IntegrityError as exc:
            raise BadRequest(f"a lookup table named {name!r} exists already in this project") from exc
        found = self.get(project_id, table_id)
        assert found is not None
        return found

    def tables(self, project_id: int) -> list[LookupTable]:
        rows = self._conn.execute(f"{_SELECT} WHERE project_id = ? ORDER BY name, id", [project_id]).fetchall()
        return [_table(r) for r in rows]

    def get(self, project_id: int, table_id: str) -> LookupTable | None:
        rows = self._conn.execute(f"{_SELECT} WHERE project_id = ? AND id = ?", [project_id, table_id]).fetchall()
        return _table(rows[0]) if rows else None

    def delete(self, project_id: int, table_id: str) -> bool:
        with self._write() as conn:
            conn.execute("DELETE FROM lookup_mappings WHERE project_id = ? AND table_id = ?", [project_id, table_id])
            conn.execute(
                "DELETE FROM lookup_rows WHERE table_id IN (SELECT id FROM lookup_tables WHERE project_id = ? AND id = ?)",
                [project_id, table_id],
            )
            return (
                conn.execute(
                    "DELETE FROM lookup_tables WHERE project_id = ? AND id = ?", [project_id, table_id]
                ).rowcount
                == 1
            )

    def replace(self, project_id: int, table_id: str, table: Table, *, max_project_rows: int | None = None) -> bool:
        """All rows replaced by the table's, or nothing changed; False when there is no such table.
        `max_project_rows`: refused (BadRequest) when the project's tables would hold more rows together."""
        now = time.time()
        with self._write() as conn:
            if max_project_rows is not None:
                (others,) = conn.execute(
                    "SELECT coalesce(sum(row_count), 0) FROM lookup_tables WHERE project_id = ? AND id <> ?",
                    [project_id, table_id],
                ).fetchone()
                if int(others) + len(table.rows) > max_project_rows:
                    raise BadRequest(
                        f"the project's lookup tables would hold {int(others) + len(table.rows)} rows together;"
                        f" at most {max_project_rows} (this table: {len(table.rows)})"
                    )
            changed = conn.execute(
                "UPDATE lookup_tables SET columns = ?, row_count = ?, updated_at = ? WHERE project_id = ? AND id = ?",
                [orjson.dumps(list(table.columns)).decode(), len(table.rows), now, project_id, table_id],
            ).rowcount
            if changed != 1:
                return False
            conn.execute("DELETE FROM lookup_rows WHERE table_id = ?", [table_id])
            conn.executemany(
                'INSERT INTO lookup_rows (table_id, key, position, "values") VALUES (?, ?, ?, ?)',
                ((table_id, key, i, orjson.dumps(values).decode()) for i, (key, values) in enumerate(table.rows)),
            )
        return True

    def rows(self, table_id: str, *, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Typed rows in upload order (datetimes as {"$datetime": ...})."""
        rows = self._conn.execute(
            'SELECT "values" FROM lookup_rows WHERE table_id = ? ORDER BY position LIMIT ? OFFSET ?',
            [table_id, 2**62 if limit is None else limit, offset],  # (no limit: both accept a large one)
        ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def lookup(self, table_id: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The rows of these ids (those that exist): what a query maps a property through."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for key, values in self._conn.execute(
                f'SELECT key, "values" FROM lookup_rows WHERE table_id = ? AND key IN ({marks})', [table_id, *chunk]
            ):
                found[str(key)] = orjson.loads(values)
        return found

    # -- mappings: which property a table enriches --------------------------------------------------

    def mappings(self, project_id: int, table_id: str) -> dict[str, list[str]]:
        """{"event": [...], "user": [...]}: the properties mapped to this table, by name."""
        found: dict[str, list[str]] = {source: [] for source in MAPPING_SOURCES}
        for source, prop in self._conn.execute(
            "SELECT source, property FROM lookup_mappings WHERE project_id = ? AND table_id = ? ORDER BY property",
            [project_id, table_id],
        ):
            found[str(source)].append(str(prop))
        return found

    def set_mappings(self, project_id: int, table_id: str, wanted: dict[str, list[str]]) -> None:
        """This table's mappings replaced by `wanted`; a property already mapped to another table is refused
        (one table a property, as in Mixpanel's Lexicon)."""
        with self._write() as conn:
            for source, props in wanted.items():
                for prop in props:
                    row = conn.execute(
                        "SELECT t.name FROM lookup_mappings m JOIN lookup_tables t ON t.id = m.table_id"
                        " WHERE m.project_id = ? AND m.source = ? AND m.property = ? AND m.table_id <> ?",
                        [project_id, source, prop, table_id],
                    ).fetchone()
                    if row is not None:
                        raise BadRequest(
                            f"the {source} property {prop!r} is mapped to the lookup table {row[0]!r} already"
                            " (a property maps to one table)"
                        )
            conn.execute("DELETE FROM lookup_mappings WHERE project_id = ? AND table_id = ?", [project_id, table_id])
            conn.executemany(
                "INSERT INTO lookup_mappings VALUES (?, ?, ?, ?)",
                [(project_id, source, prop, table_id) for source, props in wanted.items() for prop in props],
            )

    def mapped(self, project_id: int, source: str, prop: str) -> LookupTable | None:
        """The table the property is mapped to, as it is now (its `updated_at` names the version)."""
        rows = self._conn.execute(
            f"{_SELECT} WHERE project_id = ? AND id = (SELECT table_id FROM lookup_mappings"
            " WHERE project_id = ? AND source = ? AND property = ?)",
            [project_id, project_id, source, prop],
        ).fetchall()
        return _table(rows[0]) if rows else None

    def version_rows(self, table_id: str, updated_at: float) -> list[tuple[str, str]] | None:
        """(row id, typed values as JSON) of the table if it is still at that version, in one read
        transaction (a replace commits between two statements otherwise); None when it moved on."""
        with self._conn.read() as conn:
            row = conn.execute("SELECT updated_at FROM lookup_tables WHERE id = ?", [table_id]).fetchone()
            if row is None or float(row[0]) != updated_at:
                return None
            return [
                (str(k), str(v))
                for k, v in conn.execute('SELECT key, "values" FROM lookup_rows WHERE table_id = ?', [table_id])
            ]

    # -- the replace budget ---------------------------------------------------------------------------

    def replaces_since(self, project_id: int, since: float) -> list[float]:
        rows = self._conn.execute(
            "SELECT at FROM lookup_replacements WHERE project_id = ? AND at > ? ORDER BY at", [project_id, since]
        ).fetchall()
        return [float(r[0]) for r in rows]

    def count_replace(self, project_id: int, at: float) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM lookup_replacements WHERE at < ?", [at - 2 * 86_400])
            conn.execute("INSERT INTO lookup_replacements VALUES (?, ?)", [project_id, at])
