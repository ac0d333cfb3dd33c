"""What one request asks the store to write."""

from __future__ import annotations

from dataclasses import dataclass, field

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.profiles import ProfileUpdate


@dataclass
class WriteBatch:
    """Everything one request writes; durable as a whole once the engine acknowledges it."""

    events: list[StoredEvent] = field(default_factory=list)
    profile_updates: list[ProfileUpdate] = field(default_factory=list)
    group_updates: list[ProfileUpdate] = field(default_factory=list)

    @property
    def project_id(self) -> int | None:
        """The project of the first record (tracking requests name theirs per record, by token)."""
        for records in (self.events, self.profile_updates, self.group_updates):
            if records:
                return records[0].project_id
        return None

    def __len__(self) -> int:
        return len(self.events) + len(self.profile_updates) + len(self.group_updates)
