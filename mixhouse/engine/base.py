"""The seam between the domain and a storage engine. The embedded DuckDB engine implements it; a
distributed engine will implement the same few methods."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import pyarrow as pa

from mixhouse.domain.export import ExportQuery
from mixhouse.domain.scan import ScanQuery
from mixhouse.domain.spec import Spec
from mixhouse.domain.writes import WriteBatch

R = TypeVar("R")


@dataclass(frozen=True)
class Commit:
    """One group commit, as commit observers (metrics) see it."""

    events: int
    profile_updates: int  # user and group profile updates
    seconds: float  # the write plus the fsync that acknowledges it


IDENTITY_MAPPING_SCHEMA = pa.schema([("distinct_id", pa.string()), ("resolved_distinct_id", pa.string())])
"""`Engine.identity_mappings` rows: an id of a merged identity cluster and the id the cluster resolves to."""

CommitObserver = Callable[[Commit], None]
"""Called on the writer's thread after every commit; passed to the engine when it is opened."""


@dataclass(frozen=True)
class EngineStats:
    """What an operator graphs about an engine now (mixhouse_write_queue_rows)."""

    pending_rows: int  # rows accepted and waiting to be committed


@dataclass(frozen=True)
class DeleteResult:
    """What `delete_users` removed: every id of the identity clusters of the ids asked for."""

    distinct_ids: tuple[str, ...]  # the ids asked for and every id merged with them, sorted
    events: int  # event rows deleted
    profiles: int  # user profiles deleted


@dataclass(frozen=True)
class UserData:
    """Everything stored about some users (a GDPR retrieval): their ids, profiles and events."""

    distinct_ids: tuple[str, ...]  # as DeleteResult's
    canonical: dict[str, str]  # each id of `distinct_ids` -> the id its cluster is known by
    profiles: dict[str, dict[str, object]]  # canonical id -> profile properties
    events: Iterator[bytes] = field(default_factory=lambda: iter(()))  # JSON lines, as /export writes them


class Engine(Protocol):
    def submit(self, batch: WriteBatch) -> Future[None]:
        """Queue a write; the future resolves once it is on disk (fsync), or fails."""
        ...

    def export_lines(self, query: ExportQuery) -> Iterator[bytes]:
        """The export body in chunks of whole JSON lines, sorted by time, memory flat in the row count.
        An expression the engine cannot run (`query.where`) is refused at once, before any byte."""
        ...

    def query(self, spec: Spec[R]) -> R:
        """Answer a question of the domain (a `Spec` dataclass of `mixhouse.domain.query` or another
        capability's package); the spec's type parameter is the answer's type."""
        ...

    def scan(self, query: ScanQuery) -> Iterator[pa.RecordBatch]:
        """The matching events or profiles as Arrow batches of `query.schema`, in `query.order`, memory flat
        in the row count. Unavailable at once (before any batch) when the store is down."""
        ...

    def identity_mappings(self, project_id: int, *, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """Every id of every identity cluster of two or more ids, with the id the cluster resolves to (its
        canonical id, listed too, mapped to itself), as batches of IDENTITY_MAPPING_SCHEMA sorted by
        `distinct_id` (byte order), memory flat in the row count; an id merged with no other is absent.
        Unavailable at once (before any batch) when the store is down."""
        ...

    def profile(self, project_id: int, distinct_id: str) -> dict[str, object] | None: ...

    def group_profile(self, project_id: int, group_key: str, group_id: str) -> dict[str, object] | None: ...

    def delete_users(self, project_id: int, distinct_ids: list[str]) -> DeleteResult:
        """Delete every event and profile of these users and of every id merged with them, and their
        identity links, atomically with respect to writes (GDPR/CCPA deletions). Later events of an id
        start a new history."""
        ...

    def delete_events(self, project_id: int, insert_ids: list[str]) -> int:
        """Delete every event of the project with one of these `$insert_id`s (all copies), atomically with
        respect to writes; the number of rows deleted (warehouse imports: Mirror deletions, `delete_data`)."""
        ...

    def user_data(self, project_id: int, distinct_ids: list[str], since_ms: int | None = None) -> UserData:
        """Everything stored about these users and every id merged with them (GDPR/CCPA retrievals);
        `since_ms`: only events from then on."""
        ...

    def backup(self, target: Path) -> dict[str, int]:
        """Write a consistent copy of the store, holding every write acknowledged before the call, to the
        new file `target` while writes go on; returns the copy's row counts by table."""
        ...

    def health(self) -> list[str]:
        """What keeps the engine from taking writes now (empty: ready)."""
        ...

    def stats(self) -> EngineStats:
        """Figures for the metrics endpoint, cheap enough to read on every scrape."""
        ...

    def warming(self) -> list[str]:
        """What the engine is still preparing after start; queries that need it wait for it."""
        ...

    def close(self) -> None: ...


__all__ = [
    "IDENTITY_MAPPING_SCHEMA",
    "Commit",
    "CommitObserver",
    "DeleteResult",
    "Engine",
    "EngineStats",
    "UserData",
    "WriteBatch",
]
