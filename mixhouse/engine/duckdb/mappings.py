"""`Engine.identity_mappings` on DuckDB: the members of a project's merged identity clusters, each with the
id its cluster resolves to, streamed as Arrow batches (data pipelines write them as Mixpanel's
`mp_identity_mappings_data`, docs/pipelines.md).

`identity_map` holds one row per id that is not its own canonical id; the canonical ids themselves are
added once each (`SELECT DISTINCT canonical_id`), so the stream lists whole clusters. A canonical id never
appears as a `distinct_id` of the map (it is its own), so the two halves never repeat an id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from mixhouse.engine.base import IDENTITY_MAPPING_SCHEMA
from mixhouse.engine.duckdb.scan import typed_batches

_SQL = """
    SELECT distinct_id, canonical_id AS resolved_distinct_id FROM identity_map WHERE project_id = $p
    UNION ALL
    SELECT DISTINCT canonical_id, canonical_id FROM identity_map WHERE project_id = $p
    ORDER BY distinct_id
"""


def identity_mappings(
    open_cursor: Callable[[], duckdb.DuckDBPyConnection],
    guard: Callable[[], Any],
    project_id: int,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Batches of IDENTITY_MAPPING_SCHEMA by distinct_id. `open_cursor` gives a connection of the stream's
    own (the generator may be consumed on another thread); `guard` is the engine's failure guard."""
    schema = IDENTITY_MAPPING_SCHEMA
    with guard():
        conn = open_cursor()
    try:
        with guard():
            reader = conn.sql(_SQL, params={"p": project_id}).to_arrow_reader(batch_rows)
        yield from typed_batches(reader, schema, guard)
    finally:
        conn.close()
