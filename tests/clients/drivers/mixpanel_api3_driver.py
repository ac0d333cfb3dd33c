"""Drives the unmodified PyPI `mixpanel-api3` 0.2.1 (the Python 3 port of `mixpanel-api`) against MP_BASE.

Redirect: the three base URLs are class attributes (`Mixpanel.RAW_API`, `FORMATTED_API`, `IMPORT_API`),
overwritten before use. Prints one JSON object: what each call returned."""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mixpanel_api import Mixpanel  # type: ignore[import-not-found]

BASE = os.environ["MP_BASE"].rstrip("/")
DATES = {"from_date": "2024-01-01", "to_date": "2024-01-02"}


def main() -> None:
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp())
    Mixpanel.RAW_API, Mixpanel.FORMATTED_API, Mixpanel.IMPORT_API = f"{BASE}/api", f"{BASE}/api", BASE
    m = Mixpanel(os.environ["MP_SECRET"], token=os.environ["MP_TOKEN"], timeout=20, pool_size=1)
    out["export"] = m.query_export({**DATES, "event": '["Signed Up"]'})
    # Not called: query_export(add_gzip_header=True) fails inside the client on any gzip reply
    # (io.StringIO over bytes, a Python 3 porting slip), against Mixpanel as here.
    # a small export streamed raw into a .gz file: it must be gzip (Mixpanel compresses whenever asked)
    m.export_events(str(tmp / "small.json"), {**DATES, "event": '["Purchase"]'}, add_gzip_header=True, raw_stream=True)
    small = (tmp / "small.json.gz").read_bytes()
    out["raw_bytes"] = len(small)
    out["raw"] = [json.loads(line) for line in gzip.decompress(small).splitlines() if line]
    out["engage"] = m.query_engage({"where": 'properties["plan"] == "pro"'})
    m.import_events(
        [{"event": "API3 Imported", "properties": {"distinct_id": "u7", "time": 1704070800, "$insert_id": "a3-u7"}}],
        timezone_offset=0,
    )
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
