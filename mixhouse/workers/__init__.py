"""Processes beside the server's own that validate large /import batches (docs/ingestion.md)."""

from mixhouse.workers.pool import ImportWorkers

__all__ = ["ImportWorkers"]
