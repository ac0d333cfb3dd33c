"""What Lexicon schemas change outside the Schemas API.

- An event schema with `metadata.com.mixpanel.dropped: true` stops that event at ingestion: `/track`
  and `/import` report each such record as failed (index, `$insert_id`, field `event`, a message naming
  the schema), the way they report any other rejected record, and store the rest of the batch.
- A property marked dropped in an event schema is removed from that event's records at ingestion (the
  record itself is stored).
- An event schema with `hidden: true` leaves `/events/names`; a property marked hidden leaves
  `/events/properties/top` (of that event, or of all events when no event is named). The engine is asked
  for as many more rows as there are hidden names, so the answer still has `limit` rows when it can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mixhouse.domain.catalog import CatalogPort
from mixhouse.domain.events import FailedRecord, PreparedBatch
from mixhouse.lexicon.store import EVENT_TYPES, SchemaStore

DROPPED = "event {name!r} is dropped by this project's Lexicon schema (schemaJson.metadata.com.mixpanel.dropped)"

T = TypeVar("T")


def _insert_id(record: Any) -> str | None:
    props = record.get("properties") if isinstance(record, dict) else None
    value = props.get("$insert_id") if isinstance(props, dict) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Drops:
    """What a project's schemas drop at ingestion: whole events, and properties of some events."""

    events: frozenset[str] = frozenset()
    properties: Mapping[str, frozenset[str]] = field(default_factory=dict)


NO_DROPS = Drops()


class DroppedEvents:
    """Per request: what each project drops (one query per project met)."""

    def __init__(self, catalog: CatalogPort) -> None:
        self._store = SchemaStore(catalog)
        self._by_project: dict[int, Drops] = {}

    def __call__(self, project_id: int) -> Drops:
        if project_id not in self._by_project:
            events, properties = self._store.drops(project_id)
            self._by_project[project_id] = Drops(events, properties) if events or properties else NO_DROPS
        return self._by_project[project_id]


def _without(record: dict[str, Any], properties: frozenset[str]) -> dict[str, Any]:
    props = record.get("properties")
    if not isinstance(props, dict) or properties.isdisjoint(props):
        return record
    return {**record, "properties": {k: v for k, v in props.items() if k not in properties}}


def split_dropped(
    records: Sequence[Any], project_of: Callable[[Any], int | None], dropped: Callable[[int], Drops]
) -> tuple[list[Any], list[int], list[FailedRecord]]:
    """(records to ingest, their indexes in `records`, a failure for each dropped record); dropped
    properties are taken out of the records kept (copies: the caller's records are left as they are).
    `project_of` gives a record's project id, or None when it has none (validation reports that)."""
    kept: list[Any] = []
    kept_index: list[int] = []
    failures: list[FailedRecord] = []
    for index, record in enumerate(records):
        name = record.get("event") if isinstance(record, dict) else None
        project_id = project_of(record) if isinstance(name, str) else None
        if project_id is not None:
            drops = dropped(project_id)
            if name in drops.events:
                failures.append(FailedRecord(index, _insert_id(record), "event", DROPPED.format(name=name)))
                continue
            if name in drops.properties:
                record = _without(record, drops.properties[str(name)])
        kept.append(record)
        kept_index.append(index)
    return kept, kept_index, failures


def merge_failures(prepared: PreparedBatch, kept_index: list[int], dropped: list[FailedRecord]) -> None:
    """Put the indexes of `prepared` (made from the kept records) back in terms of the whole batch and add
    the dropped records' failures, in index order."""
    if not dropped:
        return
    remapped = [FailedRecord(kept_index[f.index], f.insert_id, f.field, f.message) for f in prepared.failed]
    prepared.failed = sorted(remapped + dropped, key=lambda f: f.index)


def visible_event_names(
    catalog: CatalogPort, project_id: int, ask: Callable[[int], list[str]], limit: int
) -> list[str]:
    """`ask(n)` returns up to n event names from the engine; hidden ones are removed afterwards."""
    hidden = SchemaStore(catalog).event_names(project_id, "hidden")
    if not hidden:
        return ask(limit)
    return [name for name in ask(limit + len(hidden)) if name not in hidden][:limit]


def hidden_properties(catalog: CatalogPort, project_id: int, events: Sequence[str] | None) -> frozenset[str]:
    """Properties marked hidden in the schemas of `events` (None: of any event)."""
    store = SchemaStore(catalog)
    if not store.has_any(project_id):
        return frozenset()
    if events is not None:
        entries = [e for t in EVENT_TYPES for name in events if (e := store.get(project_id, t, name)) is not None]
    else:
        entries = [e for t in EVENT_TYPES for e in store.list(project_id, t)]
    return frozenset(name for entry in entries for name in entry.properties_flagged("hidden"))


def visible_properties(
    catalog: CatalogPort,
    project_id: int,
    events: Sequence[str] | None,
    ask: Callable[[int], list[T]],
    key: Callable[[T], str],
    limit: int,
) -> list[T]:
    """`ask(n)` returns up to n property rows from the engine; hidden ones are removed afterwards."""
    hidden = hidden_properties(catalog, project_id, events)
    if not hidden:
        return ask(limit)
    return [row for row in ask(limit + len(hidden)) if key(row) not in hidden][:limit]
