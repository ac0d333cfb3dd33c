from mixhouse.engine.duckdb.engine import DuckDBEngine

__all__ = ["DuckDBEngine"]
