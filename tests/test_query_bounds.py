"""Bounded queries: a deadline covers a query end to end (engine statements and the Python that shapes
the reply), every Query API request has one (the server's, which a project can only tighten), and a
reply holds at most MIXHOUSE_MAX_REPLY_VALUES values (segments x buckets), past which the answer is a
clear 400. The review saw a minute-unit segmentation with `on` and limit=10000 answer 200 after 133 s
with 532 MB, under a 2 s project timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mixhouse.domain.limits import QueryTimedOut, query_deadline
from mixhouse.domain.project import Project
from mixhouse.domain.query.params import CountType
from mixhouse.domain.query.segmentation import SeriesRow, parse_timeline, series_values
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

MAX_VALUES = 1000
DAY0 = 1_717_200_000  # 2024-06-01 00:00:00 UTC
AUTH = (SA_USER, SA_SECRET)


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("bounds") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"MIXHOUSE_MAX_REPLY_VALUES": str(MAX_VALUES)}).start()
    events = [
        {
            "event": "Viewed",
            "properties": {
                "distinct_id": f"u{k}",
                "time": DAY0 + (k % 10) * 86_400 + k,
                "$insert_id": f"b{k}",
                "page": f"p{k % 200}",
                "n": k,
            },
        }
        for k in range(2000)
    ]
    response = httpx.post(f"{proc.url}/import", json=events, auth=(SECRET, ""), timeout=60)
    assert response.status_code == 200, response.text
    yield proc
    proc.stop()


def segmentation(server: ServerProcess, **params: Any) -> httpx.Response:
    query = {"project_id": PROJECT_ID, "event": "Viewed", "from_date": "2024-06-01", "to_date": "2024-06-10", **params}
    return httpx.get(f"{server.url}/api/query/segmentation", params=query, auth=AUTH, timeout=60)


def test_a_reply_at_the_cap_is_served(bounded: ServerProcess) -> None:
    at_cap = segmentation(bounded, on='properties["page"]', limit="100")  # 100 segments x 10 days
    assert at_cap.status_code == 200, at_cap.text
    assert len(at_cap.json()["data"]["values"]) == 100


def test_a_reply_past_the_cap_is_a_clear_400(bounded: ServerProcess) -> None:
    over = segmentation(bounded, on='properties["page"]', limit="10000")  # 200 segments x 10 days
    assert over.status_code == 400
    assert over.json()["error"] == (
        "Invalid parameter: limit (the reply would hold 101 segments x 10 day buckets = 1010 values, more than"
        " 1000; use a larger unit, a shorter date range or a smaller limit)"
    )
    minutes = segmentation(bounded, unit="minute", from_date="2024-06-01", to_date="2024-06-01")
    assert minutes.status_code == 400 and "1 segments x 1440 minute buckets" in minutes.json()["error"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (
            "/api/query/segmentation/multiseg",
            {"outer": 'properties["page"]', "inner": 'properties["page"]', "limit": "10000"},
        ),
        ("/api/query/segmentation/numeric", {"on": 'properties["n"]', "buckets": "1000"}),
        ("/api/query/events/properties", {"name": "page", "limit": "10000"}),
    ],
)
def test_every_series_endpoint_is_bounded(bounded: ServerProcess, path: str, params: dict[str, str]) -> None:
    query = {"project_id": PROJECT_ID, "event": "Viewed", "from_date": "2024-06-01", "to_date": "2024-06-10", **params}
    response = httpx.get(f"{bounded.url}{path}", params=query, auth=AUTH, timeout=60)
    assert response.status_code == 400, response.text
    assert "values, more than 1000" in response.json()["error"]


def test_shaping_a_reply_stops_at_the_deadline() -> None:
    """The Python after the engine is bounded too: past the deadline, series_values raises instead of
    zero-filling on."""
    timeline = parse_timeline({"from_date": "2024-06-01", "to_date": "2024-06-02"}, Project(1, "p", "t", "s", "k"))
    rows = [SeriesRow(f"k{n}", None, timeline.starts[0], 1.0) for n in range(10)]
    assert len(series_values(rows, timeline, CountType.GENERAL)) == 10
    with query_deadline(0.001):
        time.sleep(0.01)
        with pytest.raises(QueryTimedOut):
            series_values(rows, timeline, CountType.GENERAL)


def test_every_query_has_the_servers_deadline(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("deadline") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"MIXHOUSE_QUERY_TIMEOUT_SECONDS": "0.000001"}).start()
    try:
        response = segmentation(proc)
        assert response.status_code == 504
        assert response.json()["error"] == (
            "Query timed out: it ran longer than the server's 1e-06 second limit; narrow the date range or filters"
        )
    finally:
        proc.stop()


def test_a_minute_series_is_shaped_once_per_segment_not_once_per_row() -> None:
    """A month of minutes without `on`: one series of 43,200 buckets, one row per bucket. The reply was
    built with a fresh zero-filled series per row (43,200 x 43,200 entries: 85 s in the review's case,
    answered long past a 0.5 s deadline); it is built once per segment. The 5 s deadline is a hundred
    times what the shaping takes."""
    project = Project(1, "p", "t", "s", "k", timezone="America/New_York")
    timeline = parse_timeline({"from_date": "2024-01-01", "to_date": "2024-01-30", "unit": "minute"}, project)
    rows = [SeriesRow("Viewed", None, start, 1.0) for start in timeline.starts]
    with query_deadline(5.0):
        values = series_values(rows, timeline, CountType.GENERAL, keys=("Viewed",))
    assert len(values["Viewed"]) == 43_200 and sum(values["Viewed"].values()) == 43_200
