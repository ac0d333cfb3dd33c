"""What an App API use case (`/api/app/projects/{projectId}/...`) receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mixhouse.catalog import Catalog
from mixhouse.domain.auth import Caller
from mixhouse.domain.project import Project
from mixhouse.engine.base import Engine
from mixhouse.errors import NotFound


@dataclass(frozen=True)
class AppContext:
    caller: Caller
    method: str
    path_params: dict[str, str]
    params: dict[str, str]  # query string (and form fields)
    body: Any  # the parsed JSON body, or None
    engine: Engine
    catalog: Catalog
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def project(self) -> Project:
        return self.caller.project

    def path_id(self, name: str, not_found: str) -> int:
        """A numeric id from the path; anything else is "not found" (`not_found` takes `{}` for the id).
        isascii: '²' passes isdigit() but not int()."""
        raw = self.path_params.get(name, "")
        if not (raw.isascii() and raw.isdigit()):
            raise NotFound(not_found.format(raw))
        return int(raw)
