"""Lookup-table reads in a query: which table version each `properties["p"]["column"]` reads, decided
once per query before an engine prints it, and the rows of that version for the engine to join.

    bound = bind_spec(spec, project_id, source)    # every EventExpr in the spec, Lookup nodes bound

The engine holds a `LookupSource` (mixhouse.lookup.resolve.LookupResolver on the catalog) and asks it
only for versions it has not loaded yet, so a query over an unchanged table reads no lookup row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from mixhouse.errors import Unavailable
from mixhouse.expr import ast
from mixhouse.expr.plan import LOOKUP_UNAVAILABLE, EventExpr

T = TypeVar("T")


@dataclass(frozen=True)
class MappedTable:
    """The version of the table a property is mapped to, and its columns (the first is the row id)."""

    ref: ast.LookupRef
    name: str
    columns: tuple[str, ...]


class LookupSource(Protocol):
    def mapped(self, project_id: int, source: str, prop: str) -> MappedTable | None:
        """The table mapped to the `source` ("event" or "user") property `prop`, at its current version."""
        ...

    def rows(self, ref: ast.LookupRef) -> pa.Table | None:
        """Columns `k` (row id, VARCHAR) and `v` (the row's cells as JSON text; a datetime is the only
        object, {"$datetime": "YYYY-MM-DDTHH:MM:SS"} in UTC, as csvtable stores it) of that version; None
        when the table has moved on to another version."""
        ...


def mapping_source(node: ast.Lookup, *, profiles: bool = False) -> str:
    """Whose property the base is: `properties[...]` of an event (of a profile in a profile query),
    `user[...]` of a profile."""
    return "user" if profiles or node.base.source == "user" else "event"


def resolver(
    project_id: int, source: LookupSource, *, profiles: bool = False
) -> Callable[[ast.Lookup], ast.LookupRef | str]:
    """The binding rule: the table mapped to the base property, at its version now; a message when there
    is none or it has no such column. `profiles`: the records are user profiles."""
    cache: dict[tuple[str, str], MappedTable | None] = {}

    def resolve(node: ast.Lookup) -> ast.LookupRef | str:
        where = mapping_source(node, profiles=profiles)
        key = (where, node.base.name)
        if key not in cache:
            cache[key] = source.mapped(project_id, where, node.base.name)
        table = cache[key]
        accessor = f'{node.base.source}["{node.base.name}"]'
        if table is None:
            return f"no lookup table is mapped to the {where} property {accessor}"
        if node.column not in table.columns:
            known = ", ".join(repr(c) for c in table.columns) or "none: nothing uploaded yet"
            return f"lookup table {table.name!r} has no column {node.column!r} (columns: {known})"
        return table.ref

    return resolve


def _refuse(node: ast.Lookup) -> str:
    return LOOKUP_UNAVAILABLE


def _walk(value: Any, bind: Callable[[EventExpr], EventExpr]) -> Any:
    if isinstance(value, EventExpr):
        return bind(value)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        items = tuple(_walk(v, bind) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, list):
        items_l = [_walk(v, bind) for v in value]
        return value if all(a is b for a, b in zip(items_l, value, strict=True)) else items_l
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            new = _walk(old, bind)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value


def expressions(spec: Any) -> list[EventExpr]:
    """Every EventExpr a spec (a dataclass, with tuples and nested dataclasses) holds."""
    found: list[EventExpr] = []

    def note(e: EventExpr) -> EventExpr:
        found.append(e)
        return e

    _walk(spec, note)
    return found


def has_lookups(spec: Any) -> bool:
    return any(e.lookups() for e in expressions(spec))


def bind_spec(
    spec: T, project_id: int, source: LookupSource | None, *, supported: bool = True, profiles: bool = False
) -> T:
    """`spec` with every lookup read bound (unchanged, the same object, when it has none). `supported`:
    whether the query that runs it can join lookup tables; if not, any lookup read is refused with its
    caret, as is every one when there is no `source`. `profiles`: its records are user profiles, so
    `properties[...]` reads a profile property's mapping."""
    if not has_lookups(spec):
        return spec
    rule = resolver(project_id, source, profiles=profiles) if supported and source is not None else _refuse
    bound: T = _walk(spec, lambda e: e.bind_lookups(rule))
    return bound


def bound_refs(spec: Any) -> set[ast.LookupRef]:
    return {n.table for e in expressions(spec) for n in e.lookups() if n.table is not None}


def bind_and_load(
    spec: T,
    project_id: int | None,
    source: LookupSource | None,
    load: Callable[[set[ast.LookupRef]], bool],
    *,
    supported: bool,
    profiles: bool = False,
) -> T:
    """`spec` bound to the table versions mapped now, once `load` has loaded every version it reads into
    the engine (`load` answers False when a version was replaced before it was read). A replace between
    binding and loading binds again, to the new version, up to three times; then the query is refused as
    retryable, never answered from a table half old, half new."""
    if not has_lookups(spec):
        return spec
    for _ in range(3):
        bound = bind_spec(
            spec, project_id or 0, source, supported=supported and project_id is not None, profiles=profiles
        )
        if load(bound_refs(bound)):
            return bound
    raise Unavailable("a lookup table was replaced while the query started: try again")
