from mixhouse.engine.base import Engine
from mixhouse.engine.duckdb.engine import DuckDBEngine

__all__ = ["DuckDBEngine"]


def _implements_the_port(engine: DuckDBEngine) -> Engine:
    return engine  # mypy checks here that DuckDBEngine implements every method of the Engine port
