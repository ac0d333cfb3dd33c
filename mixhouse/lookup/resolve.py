"""Which lookup table version a query reads, from the catalog: the table mapped to the property now
(its `updated_at` names the version, so a replace makes a new one), and that version's rows for an
engine to load once."""

from __future__ import annotations

import pyarrow as pa

from mixhouse.domain.catalog import CatalogPort
from mixhouse.expr.ast import LookupRef
from mixhouse.lookup.binding import MappedTable
from mixhouse.lookup.store import LookupStore


def version_of(updated_at: float) -> str:
    return repr(updated_at)


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
        """The stored JSON as it is (datetimes {"$datetime": "YYYY-MM-DDTHH:MM:SS"}, UTC): no row is
        parsed in Python (100,000 rows: 0.5 s to read, where re-encoding each took 2 s more)."""
        rows = LookupStore(self._catalog).version_rows(ref.table_id, float(ref.version))
        if rows is None:
            return None
        keys, cells = zip(*rows, strict=True) if rows else ((), ())
        return pa.table({"k": pa.array(keys, pa.string()), "v": pa.array(cells, pa.string())})
