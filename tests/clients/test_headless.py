"""PyPI `mixpanel-headless` 0.4.0 (Mixpanel's own library + `mp` CLI), unmodified, in a venv of its own,
pointed at a real mixhouse server with `MP_API_BASE_URL` (real-clients §7): discovery, saved funnels and
cohorts, segmentation (+sum, average), event and property counts, a saved funnel, retention, a saved
Insights report, export streaming and engage paging (`results: []` ends it), annotations and their tags
(`/api/app/projects/{id}/annotations/`), and one CLI command.

Not covered because mixhouse has no such endpoint: `query()` (an inline bookmark POSTed to `/api/query/insights`),
`/arb_funnels` (flows), and the App API's dashboards, experiments and webhooks (`mp flags`:
test_headless_flags.py; lexicon: test_headless_lexicon.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.support import (
    DRIVERS_DIR,
    FROM_DATE,
    PROFILES,
    SA_AUTH,
    TO_DATE,
    load_data_set,
    run_json,
    start_server,
    venv_python,
)
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET

BOOKMARK = {"name": "Signups by plan", "query": {"event": "Signed Up", "on": 'properties["plan"]',
            "from_date": FROM_DATE, "to_date": TO_DATE, "unit": "day"}}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, str]]]:
    python = venv_python("mixpanel-headless")
    tmp = tmp_path_factory.mktemp("headless")
    server = start_server(tmp / "data")
    try:
        seeded = load_data_set(server.url)
        # discovery (events/properties/top and values) looks at the last 31 days: one recent event for it
        recent = {"event": "Signed Up", "properties": {"distinct_id": "u4", "time": int(time.time()) - 3600,
                                                       "$insert_id": "recent-u4", "plan": "trial"}}  # fmt: skip
        assert httpx.post(f"{server.url}/import", json=[recent], auth=(SECRET, "")).status_code == 200
        bookmark = httpx.post(f"{server.url}/api/app/projects/{PROJECT_ID}/bookmarks", json=BOOKMARK, auth=SA_AUTH)
        assert bookmark.status_code == 200, bookmark.text
        env = {
            "MP_API_BASE_URL": server.url,
            "MP_USERNAME": SA_USER,
            "MP_SECRET": SA_SECRET,
            "MP_PROJECT_ID": str(PROJECT_ID),
            "MP_REGION": "us",
            "MP_CONFIG_PATH": str(tmp / "config.toml"),  # never ~/.mp/config.toml
        }
        ids = [str(seeded.cohort_id), str(seeded.funnel_id), str(bookmark.json()["results"]["id"])]
        got = run_json([str(python), str(DRIVERS_DIR / "headless_driver.py"), *ids], env=env, cwd=tmp)
        cli = run_json(
            [str(python.parent / "mp"), "query", "segmentation", "--event", "Signed Up", "--from", FROM_DATE,
             "--to", TO_DATE, "--on", "plan", "--format", "json"],
            env=env, cwd=tmp,
        )  # fmt: skip
        yield got, cli, {"cohort": ids[0], "funnel": ids[1], "bookmark": ids[2]}
    finally:
        server.stop()


def test_every_call_answered(run: tuple[dict[str, Any], dict[str, Any], dict[str, str]]) -> None:
    got, _, _ = run
    assert {name: value for name, value in got.items() if isinstance(value, dict) and "error" in value} == {}


def test_discovery(run: tuple[dict[str, Any], dict[str, Any], dict[str, str]]) -> None:
    got, _, ids = run
    assert got["events"] == ["Purchase", "Signed Up"]  # sorted by the client
    assert "plan" in got["properties"]
    assert got["property_values"] == ["trial"]  # the last 31 days only
    assert got["funnels"] == [{"funnel_id": int(ids["funnel"]), "name": "Signup funnel"}]
    [cohort] = got["cohorts"]
    assert (cohort["id"], cohort["name"], cohort["count"]) == (int(ids["cohort"]), "Pro users", 2)
    assert cohort["description"] == "plan is pro" and cohort["is_visible"] is True


def test_segmentation_and_counts(run: tuple[dict[str, Any], dict[str, Any], dict[str, str]]) -> None:
    got, _, _ = run
    by_plan = {"pro": {FROM_DATE: 2, TO_DATE: 0}, "free": {FROM_DATE: 1, TO_DATE: 0}}
    assert (got["segmentation"]["total"], got["segmentation"]["series"]) == (3, by_plan)
    assert got["segmentation_where"]["series"] == {"Signed Up": {FROM_DATE: 2, TO_DATE: 0}}
    assert got["segmentation_sum"]["results"] == {FROM_DATE: 0, TO_DATE: 29.5}
    assert got["segmentation_average"]["results"] == {FROM_DATE: 0, TO_DATE: 14.75}
    assert got["event_counts"]["series"] == {
        "Signed Up": {FROM_DATE: 3, TO_DATE: 0},
        "Purchase": {FROM_DATE: 0, TO_DATE: 2},
    }
    assert got["property_counts"]["series"] == by_plan


def test_funnel_retention_and_saved_report(run: tuple[dict[str, Any], dict[str, Any], dict[str, str]]) -> None:
    got, _, ids = run
    funnel = got["funnel"]
    assert funnel["funnel_id"] == int(ids["funnel"])
    assert [(s["event"], s["count"]) for s in funnel["steps"]] == [("Signed Up", 3), ("Purchase", 2)]
    assert funnel["conversion_rate"] == pytest.approx(2 / 3)
    # born Jan 1 (u1, u2, u3); u1 and u2 purchase exactly 24 h later: day 1
    first, second = got["retention"]["cohorts"]
    assert (first["date"], first["size"]) == (FROM_DATE, 3)
    assert first["retention"] == pytest.approx([0.0, 2 / 3, 0.0])
    assert (second["date"], second["size"]) == (TO_DATE, 0)
    report = got["saved_report"]
    assert report["report_type"] == "insights" and report["bookmark_id"] == int(ids["bookmark"])
    series = report["series"]["Signed Up"]
    assert {plan: sum(days.values()) for plan, days in series.items()} == {"pro": 2, "free": 1}


def test_export_and_engage_streams(run: tuple[dict[str, Any], dict[str, Any], dict[str, str]]) -> None:
    got, _, _ = run
    assert [(e["event_name"], e["distinct_id"], e["insert_id"]) for e in got["stream_events"]] == [
        ("Signed Up", "u1", "su-u1"),
        ("Signed Up", "u2", "su-u2"),
        ("Signed Up", "u3", "su-u3"),
    ]
    assert got["stream_events"][0]["event_time"] == "2024-01-01 10:00:00+00:00"
    assert got["stream_events"][0]["properties"]["plan"] == "pro"
    assert [(e["event_name"], e["distinct_id"]) for e in got["stream_events_where"]] == [("Purchase", "u2")]
    # the client moves $last_seen out of the properties
    assert {
        p["distinct_id"]: {**p["properties"], "$last_seen": p["last_seen"]} for p in got["stream_profiles"]
    } == PROFILES
    assert [p["distinct_id"] for p in got["stream_profiles_cohort"]] == ["u1", "u3"]
    assert got["stream_profiles_where"] == [
        {"distinct_id": "u1", "last_seen": None, "properties": {"plan": "pro"}},
        {"distinct_id": "u3", "last_seen": None, "properties": {"plan": "pro"}},
    ]


def test_cli_segmentation(run: tuple[dict[str, Any], dict[str, Any], dict[str, str]]) -> None:
    _, cli, _ = run
    # the CLI wraps the bare property name as properties["plan"]
    assert (cli["event"], cli["segment_property"], cli["total"]) == ("Signed Up", "plan", 3)
    assert cli["series"] == {"pro": {FROM_DATE: 2, TO_DATE: 0}, "free": {FROM_DATE: 1, TO_DATE: 0}}


def test_annotations(run: tuple[dict[str, Any], dict[str, Any], dict[str, str]]) -> None:
    got = run[0]
    tag = got["annotation_tag"]
    assert (tag["name"], tag["project_id"], tag["has_annotations"]) == ("release", PROJECT_ID, False)
    made = got["annotation"]
    assert (made["date"], made["description"], made["project_id"]) == ("2024-01-01 10:00:00", "Launch", PROJECT_ID)
    assert [t["id"] for t in made["tags"]] == [tag["id"]]
    assert made["user"]["first_name"] == SA_USER
    # fromDate/toDate 2024-01-01..02 leave out the one of 2023-12-01; tags=<id> keeps the tagged one
    assert [a["id"] for a in got["annotations"]] == [made["id"]]
    assert [a["id"] for a in got["annotations_by_tag"]] == [made["id"]]
    assert got["annotation_get"] == made
    assert (got["annotation_update"]["description"], got["annotation_update"]["tags"]) == ("Launch day", [])
    assert [(t["name"], t["has_annotations"]) for t in got["annotation_tags"]] == [("release", False)]
    assert [(a["description"], a["date"]) for a in got["annotations_after_delete"]] == [
        ("Launch day", "2024-01-01 10:00:00")
    ]
