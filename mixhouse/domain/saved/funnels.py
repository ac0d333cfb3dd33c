"""Saved funnels: the definition `/funnels` reads by `funnel_id` (Mixpanel's Query API only reads saved
ones), kept in the catalog database beside the other saved objects."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson

from mixhouse.catalog import Catalog
from mixhouse.errors import BadRequest
from mixhouse.expr import parse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS saved_funnels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    steps       TEXT NOT NULL,      -- JSON [{"event", "where", "label"}]
    length      INTEGER NOT NULL,
    length_unit TEXT NOT NULL,
    counting    TEXT NOT NULL,      -- uniques | totals
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS saved_funnels_by_project ON saved_funnels(project_id, id);
"""

MAX_STEPS = 32  # as ClickHouse's windowFunnel; Mixpanel's UI stops well before


class LengthUnit(StrEnum):
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def ms(self) -> int:
        return {"second": 1_000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}[self.value]


class Counting(StrEnum):
    UNIQUES = "uniques"
    TOTALS = "totals"


MAX_LENGTH_MS = 90 * 86_400_000  # "may not be greater than 90 days" (reference §5.3)


@dataclass(frozen=True)
class FunnelStep:
    event: str
    where: str | None = None
    label: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "where": self.where, "label": self.label}


@dataclass(frozen=True)
class SavedFunnel:
    id: int
    project_id: int
    name: str
    steps: tuple[FunnelStep, ...]
    length: int
    length_unit: LengthUnit
    counting: Counting
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "funnel_id": self.id,
            "name": self.name,
            "steps": [s.as_dict() for s in self.steps],
            "length": self.length,
            "length_unit": self.length_unit.value,
            "counting": self.counting.value,
        }


def check_length(length: int, unit: LengthUnit) -> None:
    if length < 1 or length * unit.ms > MAX_LENGTH_MS:
        raise BadRequest("Invalid parameter: length (must be positive and may not be greater than 90 days)")


def parse_steps(value: object) -> tuple[FunnelStep, ...]:
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_STEPS:
        raise BadRequest(f"steps must be a list of 2 to {MAX_STEPS} steps")
    steps = []
    for i, raw in enumerate(value):
        if isinstance(raw, str):
            raw = {"event": raw}
        if not isinstance(raw, dict):
            raise BadRequest(f"steps[{i}] must be an object with an event")
        event, where, label = raw.get("event"), raw.get("where"), raw.get("label")
        if not isinstance(event, str) or not event:
            raise BadRequest(f"steps[{i}].event must be a non-empty string")
        if where is not None and not isinstance(where, str):
            raise BadRequest(f"steps[{i}].where must be an expression string")
        if where is not None and where.strip() == "":
            where = None
        if where is not None:
            parse(where)  # a bad expression is refused when saved, with its caret
        if label is not None and not isinstance(label, str):
            raise BadRequest(f"steps[{i}].label must be a string")
        steps.append(FunnelStep(event, where, label))
    return tuple(steps)


def _row(row: tuple[Any, ...]) -> SavedFunnel:
    fid, pid, name, steps, length, unit, counting, created = row
    return SavedFunnel(
        id=int(fid),
        project_id=int(pid),
        name=str(name),
        steps=tuple(FunnelStep(s["event"], s.get("where"), s.get("label")) for s in orjson.loads(steps)),
        length=int(length),
        length_unit=LengthUnit(unit),
        counting=Counting(counting),
        created_at=float(created),
    )


_COLUMNS = "id, project_id, name, steps, length, length_unit, counting, created_at"


class FunnelStore:
    def __init__(self, catalog: Catalog) -> None:
        self._conn: sqlite3.Connection = catalog.connection()
        self._conn.executescript(_SCHEMA)

    def create(
        self,
        project_id: int,
        *,
        name: str,
        steps: tuple[FunnelStep, ...],
        length: int,
        length_unit: LengthUnit,
        counting: Counting,
    ) -> SavedFunnel:
        cur = self._conn.execute(
            "INSERT INTO saved_funnels (project_id, name, steps, length, length_unit, counting, created_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                project_id,
                name,
                orjson.dumps([s.as_dict() for s in steps]).decode(),
                length,
                length_unit.value,
                counting.value,
                time.time(),
            ),
        )
        funnel = self.get(project_id, int(cur.lastrowid or 0))
        assert funnel is not None
        return funnel

    def get(self, project_id: int, funnel_id: int) -> SavedFunnel | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM saved_funnels WHERE project_id = ? AND id = ?", (project_id, funnel_id)
        ).fetchone()
        return _row(row) if row else None

    def by_name(self, project_id: int, name: str) -> SavedFunnel | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM saved_funnels WHERE project_id = ? AND name = ? ORDER BY id LIMIT 1",
            (project_id, name),
        ).fetchone()
        return _row(row) if row else None

    def list(self, project_id: int) -> list[SavedFunnel]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM saved_funnels WHERE project_id = ? ORDER BY id", (project_id,)
        ).fetchall()
        return [_row(r) for r in rows]

    def update(self, funnel: SavedFunnel) -> SavedFunnel:
        self._conn.execute(
            "UPDATE saved_funnels SET name = ?, steps = ?, length = ?, length_unit = ?, counting = ?"
            " WHERE project_id = ? AND id = ?",
            (
                funnel.name,
                orjson.dumps([s.as_dict() for s in funnel.steps]).decode(),
                funnel.length,
                funnel.length_unit.value,
                funnel.counting.value,
                funnel.project_id,
                funnel.id,
            ),
        )
        updated = self.get(funnel.project_id, funnel.id)
        assert updated is not None
        return updated

    def delete(self, project_id: int, funnel_id: int) -> bool:
        cur = self._conn.execute("DELETE FROM saved_funnels WHERE project_id = ? AND id = ?", (project_id, funnel_id))
        return cur.rowcount > 0


def _enum(body: dict[str, Any], name: str, enum: type[LengthUnit] | type[Counting], default: Any) -> Any:
    raw = body.get(name)
    if raw is None:
        return default
    try:
        return enum(str(raw).strip().lower())
    except ValueError as exc:
        raise BadRequest(f"Invalid parameter: {name}") from exc


def definition_from_body(body: object, base: SavedFunnel | None) -> dict[str, Any]:
    """Validated fields of a POST (no base) or PATCH (over `base`) body."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    name = body.get("name", base.name if base else None)
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name is required" if base is None else "name cannot be empty")
    steps = parse_steps(body.get("steps")) if "steps" in body or base is None else base.steps
    length_raw = body.get("length", base.length if base else 7)
    if isinstance(length_raw, bool) or not isinstance(length_raw, int):
        raise BadRequest("Invalid parameter: length")
    unit = _enum(body, "length_unit", LengthUnit, base.length_unit if base else LengthUnit.DAY)
    check_length(length_raw, unit)
    counting = _enum(body, "counting", Counting, base.counting if base else Counting.UNIQUES)
    return {"name": name, "steps": steps, "length": length_raw, "length_unit": unit, "counting": counting}


def updated(funnel: SavedFunnel, fields: dict[str, Any]) -> SavedFunnel:
    return replace(funnel, **fields)
