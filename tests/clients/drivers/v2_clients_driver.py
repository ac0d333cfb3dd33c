"""Drives two unmodified PyPI clients of the legacy signed Data API v2 against MP_BASE (run with their venv's
python): `mixpanel-export` 0.2.post7 (a streaming reader of /api/2.0/export) and `mixpanel-query-py` 0.1.9
(its default auth is the signature: api_key + expire + sig, no Authorization header).

Redirect: both keep their base URL in a class attribute (`EventStream.ENDPOINT`; `Connection.ENDPOINT` and
`Connection.DATA_ENDPOINT`), overwritten before use. Prints one JSON object: what each call returned."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mixpanel_export.mixpanel_stream import EventStream  # type: ignore[import-not-found]
from mixpanel_query.auth import SecretAuth  # type: ignore[import-not-found]
from mixpanel_query.client import MixpanelQueryClient  # type: ignore[import-not-found]
from mixpanel_query.connection import Connection  # type: ignore[import-not-found]

BASE = os.environ["MP_BASE"].rstrip("/")
API_KEY, SECRET = os.environ["MP_API_KEY"], os.environ["MP_SECRET"]
FROM_DATE, TO_DATE = "2024-01-01", "2024-01-02"


def main() -> None:
    out: dict[str, Any] = {}
    EventStream.ENDPOINT = f"{BASE}/api"
    Connection.ENDPOINT = f"{BASE}/api"
    Connection.DATA_ENDPOINT = f"{BASE}/api"

    streamed: list[Any] = []
    out["export_stream_count"] = EventStream(API_KEY, SECRET).request(
        {"from_date": FROM_DATE, "to_date": TO_DATE, "event": ["Signed Up"]}, streamed.append
    )
    out["export_stream"] = streamed

    signed = MixpanelQueryClient(API_KEY, SECRET)  # SignatureAuth, the default
    out["query_export"] = list(signed.get_export(FROM_DATE, TO_DATE, event="Purchase"))
    out["query_export_where"] = list(signed.get_export(FROM_DATE, TO_DATE, where='properties["plan"] == "pro"'))
    out["funnel_list"] = signed.get_funnel_list()
    out["segmentation"] = signed.get_segmentation("Signed Up", FROM_DATE, TO_DATE, on='properties["plan"]')
    out["segmentation_sum"] = signed.get_segmentation_sum("Purchase", FROM_DATE, TO_DATE, 'properties["amount"]')
    out["engage"] = signed.get_engage(where='properties["plan"] == "pro"')
    out["annotations"] = signed.annotations_list(FROM_DATE, FROM_DATE)

    basic = MixpanelQueryClient(API_KEY, SECRET, auth_class=SecretAuth)  # Basic secret:, the other option
    out["basic_funnel_list"] = basic.get_funnel_list()
    out["basic_export"] = list(basic.get_export(FROM_DATE, TO_DATE, event=["Purchase"]))
    out["basic_annotations"] = basic.annotations_list(TO_DATE, TO_DATE)

    wrong = MixpanelQueryClient(API_KEY, "not-the-secret")
    try:
        wrong.get_funnel_list()
        out["wrong_secret"] = "accepted"
    except Exception as exc:  # urllib's HTTPError carries the status and body
        out["wrong_secret"] = {"status": getattr(exc, "code", None), "body": json.loads(exc.read())}  # type: ignore[attr-defined]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
