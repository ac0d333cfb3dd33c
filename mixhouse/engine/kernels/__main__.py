"""`python -m mixhouse.engine.kernels`: compile the kernels into their cache (before a test run)."""

import time

from mixhouse.engine.kernels import warm

started = time.perf_counter()
warm()
print(f"kernels ready in {time.perf_counter() - started:.1f} s")
