"""Warehouse imports (docs/warehouse-imports.md): events, user and group profiles and lookup tables pulled
from PostgreSQL, DuckDB files and Parquet files on a schedule, through the job runner.

`model` holds the rules of the API's bodies, `store` the catalog tables, `sources` the readers, `convert`
the Arrow-to-record conversion, `state` the row hashes each import stored, `run` the job kind and the
schedule, `api` the App API handlers."""
