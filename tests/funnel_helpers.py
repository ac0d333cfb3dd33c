"""Shared by the funnel and retention tests: load events over /import, save funnels, query."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET

AUTH = (SA_USER, SA_SECRET)
_ids = itertools.count(1)


def load(base: str, events: list[dict[str, Any]], *, secret: str = SECRET) -> None:
    """`events`: {"event", "distinct_id", "time" (ms), optional "insert_id", other properties}."""
    body = []
    for e in events:
        props = {k: v for k, v in e.items() if k not in ("event", "distinct_id", "time", "insert_id")}
        props |= {"distinct_id": e["distinct_id"], "time": e["time"]}
        props["$insert_id"] = e.get("insert_id") or f"auto-{next(_ids)}"
        body.append({"event": e["event"], "properties": props})
    for i in range(0, len(body), 2000):
        r = httpx.post(f"{base}/import", json=body[i : i + 2000], auth=(secret, ""), params={"strict": "1"}, timeout=60)
        assert r.status_code == 200, r.text


def save_funnel(base: str, definition: dict[str, Any], project_id: int = PROJECT_ID) -> int:
    r = httpx.post(f"{base}/api/app/projects/{project_id}/funnels", json=definition, auth=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["results"]["funnel_id"])


def query(base: str, path: str, project_id: int = PROJECT_ID, **params: Any) -> Any:
    r = httpx.get(f"{base}/api/query/{path}", params={"project_id": project_id, **params}, auth=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()
