"""What one request asks the store to write."""

from __future__ import annotations

from dataclasses import dataclass, field

from mixhouse.domain.columns import EventColumns
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.profiles import ProfileUpdate


@dataclass
class WriteBatch:
    """Everything one request writes; durable as a whole once the engine acknowledges it."""

    events: list[StoredEvent] = field(default_factory=list)
    profile_updates: list[ProfileUpdate] = field(default_factory=list)
    group_updates: list[ProfileUpdate] = field(default_factory=list)
    # Events handed over as columns (an /import batch validated as a whole, mixhouse/domain/columns.py),
    # stored after `events`.
    columns: list[EventColumns] = field(default_factory=list)

    @property
    def project_id(self) -> int | None:
        """The project of the first record (tracking requests name theirs per record, by token)."""
        for records in (self.events, self.columns, self.profile_updates, self.group_updates):
            if records:
                return records[0].project_id
        return None

    @property
    def event_count(self) -> int:
        return len(self.events) + sum(map(len, self.columns))

    def stored_events(self) -> list[StoredEvent]:
        """Every event of the batch as a row (`columns` turned into rows: for a store that takes rows)."""
        return self.events + [e for part in self.columns for e in part.stored_events()]

    def __len__(self) -> int:
        return self.event_count + len(self.profile_updates) + len(self.group_updates)
