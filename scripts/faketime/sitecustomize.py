"""Loaded by every Python process that scripts/at-time starts (through PYTHONPATH).

libfaketime 0.9.10 (Debian's) moves the real-time clock for a whole process tree, but Python's
`time.sleep` waits for an absolute CLOCK_MONOTONIC deadline with clock_nanosleep, which that
libfaketime rewrites into an invalid time (EINVAL) when the monotonic clock is left real, as it must be
(a faked monotonic clock hangs every lock wait with a timeout, which libfaketime does not rewrite).
A lock wait sleeps just as well, on the real monotonic clock."""

import os
import threading
import time

if os.environ.get("FAKETIME"):

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        threading.Event().wait(seconds)

    time.sleep = _sleep
