"""`mixhouse migrate`: an embedded (DuckDB) data dir's event store copied into the ClickHouse engine."""
