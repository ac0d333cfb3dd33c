"""Three older PyPI clients, unmodified, in a venv of their own, against a real mixhouse server:
`mixpanel-export` 0.2.post7 (signed /api/2.0/export, streamed) and `mixpanel-query-py` 0.1.9 (signed by
default; Basic secret as an option), which speak the legacy signed Data API v2: every request of the signed
kind carries api_key, expire and sig and no Authorization header, so a reply proves the signature was
checked and accepted (mixpanel-query-py's `annotations_list` too). And `mixpanel-api3` 0.2.1 (Basic secret: export, a gzip raw stream, engage, import)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.support import DRIVERS_DIR, EVENTS, export_all, load_data_set, run_json, start_server, venv_python
from tests.server import API_KEY, PROJECT_ID, SECRET, TOKEN, ServerProcess


def brief(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return sorted((e["event"], e["properties"]["distinct_id"], e["properties"]["time"]) for e in events)


SEEDED = brief(EVENTS)


@pytest.fixture(scope="module")
def got(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    python = venv_python("v2-clients")
    server: ServerProcess = start_server(tmp_path_factory.mktemp("v2-clients") / "data")
    try:
        seeded = load_data_set(server.url)
        for day, text in (("2024-01-01 12:00:00", "Launch"), ("2024-01-02 00:00:00", "Next day")):
            made = httpx.get(
                f"{server.url}/api/2.0/annotations/create", params={"date": day, "description": text}, auth=(SECRET, "")
            )
            assert made.status_code == 200, made.text
        env = {"MP_BASE": server.url, "MP_API_KEY": API_KEY, "MP_SECRET": SECRET}
        out = run_json([str(python), str(DRIVERS_DIR / "v2_clients_driver.py")], env=env, cwd=Path.cwd())
        out["funnel_id"] = seeded.funnel_id
        env["MP_TOKEN"] = TOKEN
        out["api3"] = run_json([str(python), str(DRIVERS_DIR / "mixpanel_api3_driver.py")], env=env, cwd=Path.cwd())
        out["stored"] = export_all(server.url)
        yield out
    finally:
        server.stop()


def test_mixpanel_export_streams_a_signed_export(got: dict[str, Any]) -> None:
    assert got["export_stream_count"] == 3
    assert brief(got["export_stream"]) == [e for e in SEEDED if e[0] == "Signed Up"]


def test_mixpanel_query_py_signed_export(got: dict[str, Any]) -> None:
    assert brief(got["query_export"]) == [e for e in SEEDED if e[0] == "Purchase"]
    assert brief(got["query_export_where"]) == [("Signed Up", "u1", 1704103200), ("Signed Up", "u3", 1704110400)]


def test_mixpanel_query_py_signed_query_api(got: dict[str, Any]) -> None:
    assert got["funnel_list"] == [{"funnel_id": got["funnel_id"], "name": "Signup funnel"}]
    values = got["segmentation"]["data"]["values"]
    assert values["pro"] == {"2024-01-01": 2, "2024-01-02": 0}
    assert values["free"] == {"2024-01-01": 1, "2024-01-02": 0}
    assert got["segmentation_sum"]["results"] == {"2024-01-01": 0, "2024-01-02": 29.5}
    assert sorted(p["$distinct_id"] for p in got["engage"]["results"]) == ["u1", "u3"]


def test_mixpanel_query_py_basic_secret(got: dict[str, Any]) -> None:
    assert got["basic_funnel_list"] == got["funnel_list"]
    assert brief(got["basic_export"]) == [e for e in SEEDED if e[0] == "Purchase"]


def test_a_wrong_secret_is_refused(got: dict[str, Any]) -> None:
    assert got["wrong_secret"]["status"] == 400
    assert got["wrong_secret"]["body"]["error"] == "Invalid request signature"


def test_mixpanel_api3(got: dict[str, Any]) -> None:
    api3 = got["api3"]
    assert brief(api3["export"]) == [e for e in SEEDED if e[0] == "Signed Up"]
    assert api3["raw_bytes"] < 1400  # small, and still gzip: the driver's gzip.decompress read it
    assert brief(api3["raw"]) == [e for e in SEEDED if e[0] == "Purchase"]
    assert sorted(p["$distinct_id"] for p in api3["engage"]) == ["u1", "u3"]
    assert [e["properties"]["time"] for e in got["stored"] if e["event"] == "API3 Imported"] == [1704070800]


def test_mixpanel_query_py_annotations_list(got: dict[str, Any]) -> None:
    """`annotations_list(start, end)`: /api/2.0/annotations?from_date=&to_date=, one day each way."""
    [launch] = got["annotations"]["annotations"]
    assert (launch["date"], launch["description"], launch["project_id"]) == (
        "2024-01-01 12:00:00",
        "Launch",
        PROJECT_ID,
    )
    assert got["annotations"]["error"] is False
    assert [a["description"] for a in got["basic_annotations"]["annotations"]] == ["Next day"]
