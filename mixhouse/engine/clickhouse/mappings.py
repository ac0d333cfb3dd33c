"""`Engine.identity_mappings` on ClickHouse: the members of a project's merged identity clusters, each with
the id its cluster resolves to, as Arrow batches (data pipelines write them as Mixpanel's
`mp_identity_mappings_data`, docs/pipelines.md).

The live `identity_map` rows (latest version of each id) plus each canonical id once, mapped to itself. The
driver returns a whole result at a time, so the stream is read in pages of PAGE_ROWS ids, each page the
next ids after the last one read (keyset paging on the sort key): no result holds more than one page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from mixhouse.engine.base import IDENTITY_MAPPING_SCHEMA
from mixhouse.engine.clickhouse.driver import DriverError
from mixhouse.engine.clickhouse.relations import identity_map_sql
from mixhouse.engine.clickhouse.store import Store
from mixhouse.errors import Unavailable

PAGE_ROWS = 200_000


def _sql(store: Store) -> str:
    # The page's bound and limit go into each half: the map's own rows are read in its sort order
    # (project_id, distinct_id), so a page skips the ids before it; the canonical ids are few next to them.
    live = identity_map_sql(store.db, "p")
    after = "({first:UInt8} = 1 OR %s > {after:String})"
    return f"""
        SELECT distinct_id, resolved_distinct_id FROM (
            SELECT m.distinct_id AS distinct_id, m.canonical_id AS resolved_distinct_id FROM {live} AS m
            WHERE {after % "m.distinct_id"} ORDER BY distinct_id LIMIT {{limit:UInt64}}
            UNION ALL
            SELECT DISTINCT m.canonical_id AS distinct_id, m.canonical_id AS resolved_distinct_id FROM {live} AS m
            WHERE {after % "m.canonical_id"} ORDER BY distinct_id LIMIT {{limit:UInt64}}
        )
        ORDER BY distinct_id
        LIMIT {{limit:UInt64}}
    """


def identity_mappings(
    store: Store, project_id: int, batch_rows: int, page_rows: int = PAGE_ROWS
) -> Iterator[pa.RecordBatch]:
    """Batches of IDENTITY_MAPPING_SCHEMA by distinct_id; Unavailable at once (before any batch) when the
    store is down: the first page is read before the stream is returned."""
    sql = _sql(store)
    params: dict[str, Any] = {"p": project_id, "first": 1, "after": "", "limit": page_rows}
    first = _page(store, sql, params)
    return _batches(store, sql, params, first, batch_rows, page_rows)


def _page(store: Store, sql: str, params: dict[str, Any]) -> pa.Table:
    try:
        return store.driver.arrow(sql, params)
    except DriverError as exc:
        raise Unavailable(f"the event store (ClickHouse) failed; retry with backoff ({exc})") from exc


def _batches(
    store: Store, sql: str, params: dict[str, Any], page: pa.Table, batch_rows: int, page_rows: int
) -> Iterator[pa.RecordBatch]:
    schema = IDENTITY_MAPPING_SCHEMA
    while True:
        for batch in page.to_batches(batch_rows):
            if len(batch):
                yield pa.RecordBatch.from_arrays(
                    [batch.column(i).cast(field.type) for i, field in enumerate(schema)], schema=schema
                )
        if page.num_rows < page_rows:
            return
        params = {**params, "first": 0, "after": page.column(0)[-1].as_py()}
        page = _page(store, sql, params)
