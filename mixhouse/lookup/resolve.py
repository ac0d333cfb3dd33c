"""Which lookup table version a query reads, from the catalog: the table mapped to the property now
(its `updated_at` names the version, so a replace makes a new one), and that version's rows for an
engine to load once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from mixhouse.domain.catalog import CatalogPort
from mixhouse.expr.ast import LookupRef
from mixhouse.lookup.binding import DATETIME_MS_KEY, MappedTable
from mixhouse.lookup.csvtable import DATETIME_KEY
from mixhouse.lookup.store import LookupStore


def version_of(updated_at: float) -> str:
    return repr(updated_at)


def _cell(value: Any) -> Any:
    if isinstance(value, dict) and DATETIME_KEY in value:
        moment = datetime.fromisoformat(value[DATETIME_KEY]).replace(tzinfo=UTC)
        return {DATETIME_MS_KEY: int(moment.timestamp() * 1000)}
    return value


class LookupResolver:
    """A `mixhouse.lookup.binding.LookupSource` over the catalog (each thread its own connection)."""

    def __init__(self, catalog: CatalogPort) -> None:
        self._catalog = catalog

    def mapped(self, project_id: int, source: str, prop: str) -> MappedTable | None:
        table = LookupStore(self._catalog).mapped(project_id, source, prop)
        if table is None:
            return None
        return MappedTable(LookupRef(table.id, version_of(table.updated_at)), table.name, table.columns)

    def rows(self, ref: LookupRef) -> pa.Table | None:
        rows = LookupStore(self._catalog).version_rows(ref.table_id, float(ref.version))
        if rows is None:
            return None
        keys = [k for k, _ in rows]
        cells = [orjson.dumps({c: _cell(v) for c, v in orjson.loads(values).items()}).decode() for _, values in rows]
        return pa.table({"k": pa.array(keys, pa.string()), "v": pa.array(cells, pa.string())})
