"""The group-commit writer (mixhouse/engine/common/writer.py) on DuckDB: a failed write that stored nothing
because of the disk (DuckDB's IOException as well as OSError) or of memory (DuckDB's OutOfMemoryException,
under MIXHOUSE_MEMORY_LIMIT) answers retryable Unavailable."""

from __future__ import annotations

import duckdb

from mixhouse.engine.common import writer as _common


class GroupCommitWriter(_common.GroupCommitWriter):
    RETRYABLE = (OSError, duckdb.IOException, duckdb.OutOfMemoryException)


__all__ = ["GroupCommitWriter"]
