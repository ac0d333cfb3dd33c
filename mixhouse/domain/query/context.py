"""What a Query API use case receives: the authenticated caller, the request's parameters as one
flat mapping (query string, form and JSON body merged), and the engine to ask."""

from __future__ import annotations

from dataclasses import dataclass

from mixhouse.catalog import Catalog
from mixhouse.domain.auth import Caller
from mixhouse.domain.project import Project
from mixhouse.engine.base import Engine


@dataclass(frozen=True)
class QueryContext:
    caller: Caller
    params: dict[str, str]
    engine: Engine
    catalog: Catalog

    @property
    def project(self) -> Project:
        return self.caller.project


@dataclass(frozen=True)
class CsvReply:
    """A `format=csv` answer."""

    text: str
