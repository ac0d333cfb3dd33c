"""Drives the unmodified PyPI `mixpanel-utils` 2.2.7 against MP_BASE (run with its own venv's python).

Redirect (real-clients §4): the three base URLs are plain instance attributes, overwritten after construction.
Prints one JSON object: what each call returned."""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mixpanel_utils import MixpanelUtils  # type: ignore[import-not-found]

BASE = os.environ["MP_BASE"].rstrip("/")
FROM_DATE, TO_DATE = "2024-01-01", "2024-01-02"


def local(m: Any) -> Any:
    m.raw_api = f"{BASE}/api"
    m.formatted_api = f"{BASE}/api"
    m.import_api = BASE
    return m


def main() -> None:
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp())
    m = local(MixpanelUtils("SECRET123", token="TOKEN123", timeout=20, pool_size=2, max_retries=1))
    dates = {"from_date": FROM_DATE, "to_date": TO_DATE}

    # reads: export (a filter on the event list and a where), engage with a where and output_properties
    out["export_signed_up"] = m.query_export({**dates, "event": '["Signed Up"]'})
    out["export_where_pro"] = m.query_export({**dates, "where": 'properties["plan"]=="pro"'})
    m.export_events(str(tmp / "all.json"), dates, add_gzip_header=True)  # Accept-Encoding: gzip, written to a file
    out["export_file"] = json.loads((tmp / "all.json").read_text())
    # the bare `properties["$email"]` the reference shows this client sending: a truthiness test
    out["engage_email"] = m.query_engage({"where": 'properties["$email"]', "output_properties": ["$email"]})

    # JQL (/api/2.0/jql, form POST): a script with params, CSV, and the query_jql_*/export_jql_* helpers
    by_name = "function main() { return Events(params).groupBy(['name'], mixpanel.reducer.count()); }"
    out["jql_by_name"] = m.query_jql(by_name, params=dates)
    out["jql_by_name_csv"] = m.query_jql(by_name, params=dates, format="csv")
    out["jql_events"] = m.query_jql_events(
        from_date=FROM_DATE, to_date=TO_DATE, event_selectors={"event": "Signed Up"}, output_properties=["plan"]
    )
    out["jql_people"] = m.query_jql_people(user_selectors='user["plan"] == "pro"', output_properties=["plan"])
    m.export_jql_events(str(tmp / "jql.json"), FROM_DATE, TO_DATE, event_selectors=[{"event": "Purchase"}])
    out["jql_export_file"] = json.loads((tmp / "jql.json").read_text())

    # engage paging: page_size 1 makes the paginator fetch pages 1.. concurrently with the session id
    out["engage_paged"] = m.query_engage({"page_size": 1})

    # writes: /import?strict=1 (JSON array), /engage (base64 form batch), then a $set over a where query
    m.import_events(
        [{"event": "Imported", "properties": {"distinct_id": "u9", "time": 1704070800, "$insert_id": "imp-u9"}}],
        timezone_offset=0,
    )
    m.import_people([{"$distinct_id": "u9", "$properties": {"$email": "u9@example.com", "plan": "trial"}}])
    out["people_set_count"] = m.people_set(
        {"tier": "gold"}, query_params={"where": 'properties["plan"] == "pro"'}, backup=False
    )

    # a service account, as the reference's harness shows (project_id on every call)
    sa = local(MixpanelUtils("sa-secret", token="TOKEN123", service_account_username="sa.user", project_id=4242,
                             timeout=20, pool_size=2, max_retries=1))  # fmt: skip
    out["sa_export"] = sa.query_export({**dates, "event": '["Imported"]'})
    out["sa_engage_pro"] = sa.query_engage({"where": 'properties["tier"] == "gold"'})
    sa.import_events(
        [{"event": "SA Imported", "properties": {"distinct_id": "u9", "time": 1704074400, "$insert_id": "sa-u9"}}],
        timezone_offset=0,
    )
    # the whole export written raw to disk, byte for byte what the server sent: gzip, as it was asked for
    sa.export_events(str(tmp / "raw.json"), dates, add_gzip_header=True, raw_stream=True)
    raw = (tmp / "raw.json.gz").read_bytes()
    out["sa_raw_is_gzip"] = raw[:2] == b"\x1f\x8b"
    out["sa_raw"] = [json.loads(line) for line in gzip.decompress(raw).splitlines() if line]
    # a small export (two events, well under 1,400 bytes) written raw to its .gz file: gzip all the same
    sa.export_events(str(tmp / "small.json"), {**dates, "event": '["Purchase"]'}, add_gzip_header=True, raw_stream=True)
    small = (tmp / "small.json.gz").read_bytes()
    out["sa_small_raw_bytes"] = len(small)
    out["sa_small_raw"] = [json.loads(line) for line in gzip.decompress(small).splitlines() if line]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
