"""On PYTHONPATH with MP_BASE set, rewrites every requests URL for https://(*.)mixpanel.com to MP_BASE, so an
unmodified requests-based console script (tap-mixpanel) talks to mixhouse (real-clients appendix B)."""

from __future__ import annotations

import os
import re
from typing import Any

if os.environ.get("MP_BASE"):
    import requests

    _base = os.environ["MP_BASE"].rstrip("/")
    _orig = requests.Session.request

    def _request(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        return _orig(self, method, re.sub(r"^https://([a-z0-9-]+\.)?mixpanel\.com", _base, str(url)), *args, **kwargs)

    requests.Session.request = _request  # type: ignore[method-assign,assignment]
