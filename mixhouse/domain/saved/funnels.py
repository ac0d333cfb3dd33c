"""Saved funnels: the definition `/funnels` reads by `funnel_id` (Mixpanel's Query API only reads saved
ones), kept in the catalog database beside the other saved objects."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson

from mixhouse.catalog import Catalog
from mixhouse.domain.saved.table import SavedTable
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
    WEEK = "week"
    MONTH = "month"  # 30 days: the window is a fixed length from each entry, not a calendar month

    @property
    def ms(self) -> int:
        return _UNIT_MS[self.value]


_UNIT_MS = {
    "second": 1_000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 7 * 86_400_000,
    "month": 30 * 86_400_000,
}


class Counting(StrEnum):
    UNIQUES = "uniques"
    TOTALS = "totals"


MAX_LENGTH_MS = 90 * 86_400_000  # "may not be greater than 90 days" (Mixpanel's funnels-query page)


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
        self._table = SavedTable(catalog, schema=_SCHEMA, table="saved_funnels", columns=_COLUMNS, row=_row)

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
        return self._table.insert(project_id, _values(name, steps, length, length_unit, counting))

    def get(self, project_id: int, funnel_id: int) -> SavedFunnel | None:
        return self._table.get(project_id, funnel_id)

    def by_name(self, project_id: int, name: str) -> SavedFunnel | None:
        return self._table.first(project_id, "name", name)

    def list(self, project_id: int) -> list[SavedFunnel]:
        return self._table.list(project_id)

    def update(self, funnel: SavedFunnel) -> SavedFunnel:
        values = _values(funnel.name, funnel.steps, funnel.length, funnel.length_unit, funnel.counting)
        return self._table.update(funnel.project_id, funnel.id, values)

    def delete(self, project_id: int, funnel_id: int) -> bool:
        return self._table.delete(project_id, funnel_id)


def _values(
    name: str, steps: tuple[FunnelStep, ...], length: int, length_unit: LengthUnit, counting: Counting
) -> dict[str, object]:
    return {
        "name": name,
        "steps": orjson.dumps([s.as_dict() for s in steps]).decode(),
        "length": length,
        "length_unit": length_unit.value,
        "counting": counting.value,
    }


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
