"""Coordination of several mixhouse processes through one PostgreSQL database: leases (one process runs
each scheduled duty, another takes over when it dies) and rate-limit windows counted across processes.
See docs/scale-out.md#several-api-processes."""
