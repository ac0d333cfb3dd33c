"""Failed logins, throttled per email and client address: after web_login_failures failures (the setting
MIXHOUSE_WEB_LOGIN_FAILURES, default 10) within LOGIN_WINDOW_SECONDS, that email is refused from that address until the oldest failure
leaves the window, even with the right password. Keyed by address as well as email so that someone
guessing from one place cannot lock the real user out from another. In memory, per server process (a
restart forgets), bounded to MAX_TRACKED keys (the oldest dropped first)."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

from mixhouse.errors import RateLimited

DEFAULT_LOGIN_FAILURES = 10
LOGIN_WINDOW_SECONDS = 15 * 60
MAX_TRACKED = 100_000


class LoginThrottle:
    def __init__(self, allowed_failures: int = DEFAULT_LOGIN_FAILURES) -> None:
        self.allowed_failures = allowed_failures
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, email: str, address: str, *, now: float | None = None) -> None:
        """Raise RateLimited when this email has failed too often from this address lately."""
        now = time.monotonic() if now is None else now
        key = (email.strip().lower(), address)
        with self._lock:
            recent = self._failures.get(key)
            if recent is None:
                return
            while recent and recent[0] <= now - LOGIN_WINDOW_SECONDS:
                recent.popleft()
            if len(recent) >= self.allowed_failures:
                retry = max(1, math.ceil(recent[0] + LOGIN_WINDOW_SECONDS - now))
                raise RateLimited(f"too many failed logins: retry in {retry} seconds", retry_after=retry)

    def failed(self, email: str, address: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = (email.strip().lower(), address)
        with self._lock:
            self._failures.setdefault(key, deque()).append(now)
            self._failures.move_to_end(key)
            while len(self._failures) > MAX_TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, email: str, address: str) -> None:
        with self._lock:
            self._failures.pop((email.strip().lower(), address), None)
