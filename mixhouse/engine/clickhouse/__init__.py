"""The ClickHouse engine: the same port as the embedded engine, on chDB (in process) or a ClickHouse server."""

from mixhouse.engine.clickhouse.engine import ClickHouseEngine

__all__ = ["ClickHouseEngine"]
