"""PyPI `mixpanel-utils` 2.2.7, unmodified, in a venv of its own, against a real mixhouse server
(real-clients §4): export with event lists, `where` and gzip, engage with `where`/`output_properties` and
concurrent paging, `/import?strict=1`, base64 `/engage` batches, `people_set` over a query, service account,
and JQL: `query_jql` (JSON and CSV), `query_jql_events`, `query_jql_people`, `export_jql_events`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.support import (
    DRIVERS_DIR,
    EVENTS,
    PROFILES,
    export_all,
    load_data_set,
    profiles,
    run_json,
    start_server,
    venv_python,
)
from tests.server import ServerProcess


def brief(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return sorted((e["event"], e["properties"]["distinct_id"], e["properties"]["time"]) for e in events)


SEEDED = brief(EVENTS)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    python = venv_python("mixpanel-utils")
    server = start_server(tmp_path_factory.mktemp("mixpanel-utils") / "data")
    try:
        load_data_set(server.url)
        got = run_json(
            [str(python), str(DRIVERS_DIR / "mixpanel_utils_driver.py")], env={"MP_BASE": server.url}, cwd=Path.cwd()
        )
        yield server, got
    finally:
        server.stop()


def test_export_reads_what_the_server_stored(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    _, got = run
    assert brief(got["export_signed_up"]) == [e for e in SEEDED if e[0] == "Signed Up"]
    assert brief(got["export_where_pro"]) == [("Signed Up", "u1", 1704103200), ("Signed Up", "u3", 1704110400)]
    # the first export came before the client imported anything; it went through gzip (Content-Encoding)
    assert brief(got["export_file"]) == SEEDED
    first = next(e for e in got["export_signed_up"] if e["properties"]["distinct_id"] == "u1")
    assert first["properties"]["plan"] == "pro" and first["properties"]["$insert_id"] == "su-u1"


def test_engage_where_output_properties_and_concurrent_pages(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    _, got = run
    assert got["engage_email"] == [
        {"$distinct_id": "u1", "$properties": {"$email": "u1@example.com"}},
        {"$distinct_id": "u2", "$properties": {"$email": "u2@example.com"}},
    ]
    # page_size=1: page 0 says total=3, pages 1 and 2 are fetched concurrently with its session_id
    assert [p["$distinct_id"] for p in got["engage_paged"]] == ["u1", "u2", "u3"]
    assert {p["$distinct_id"]: p["$properties"] for p in got["engage_paged"]} == PROFILES


def test_imports_and_people_operations_are_stored(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, got = run
    assert got["people_set_count"] == 2  # the profiles the where selected: u1, u3
    stored = profiles(server.url)
    assert stored["u9"] == {"$email": "u9@example.com", "plan": "trial"}
    assert {d for d, p in stored.items() if p.get("tier") == "gold"} == {"u1", "u3"}
    assert stored["u2"] == PROFILES["u2"]
    events = brief(export_all(server.url))
    assert events == sorted([*SEEDED, ("Imported", "u9", 1704070800), ("SA Imported", "u9", 1704074400)])


def test_service_account_reads(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    _, got = run
    assert brief(got["sa_export"]) == [("Imported", "u9", 1704070800)]
    assert [p["$distinct_id"] for p in got["sa_engage_pro"]] == ["u1", "u3"]
    # raw_stream writes the body as sent: gzip (over 1,400 bytes and asked for), every event up to then
    assert got["sa_raw_is_gzip"] is True
    # small exports are gzip too when asked (a plain body here would make a .gz file that is not gzip)
    assert got["sa_small_raw_bytes"] < 1400
    assert brief(got["sa_small_raw"]) == [e for e in SEEDED if e[0] == "Purchase"]
    assert brief(got["sa_raw"]) == sorted([*SEEDED, ("Imported", "u9", 1704070800), ("SA Imported", "u9", 1704074400)])


def test_jql_scripts_and_helpers(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    _, got = run
    assert got["jql_by_name"] == [{"key": ["Purchase"], "value": 2}, {"key": ["Signed Up"], "value": 3}]
    assert got["jql_by_name_csv"] == "key.0,value\nPurchase,2\nSigned Up,3\n"
    assert got["jql_events"] == [
        {"event": "Signed Up", "properties": {"distinct_id": d, "time": t, "plan": p}}
        for d, t, p in [("u1", 1704103200, "pro"), ("u2", 1704106800, "free"), ("u3", 1704110400, "pro")]
    ]
    assert sorted(got["jql_people"], key=lambda p: p["$distinct_id"]) == [
        {"$distinct_id": "u1", "$properties": {"plan": "pro"}},
        {"$distinct_id": "u3", "$properties": {"plan": "pro"}},
    ]
    assert [
        (e["event"], e["properties"]["distinct_id"], e["properties"]["amount"]) for e in got["jql_export_file"]
    ] == [
        ("Purchase", "u1", 9.5),
        ("Purchase", "u2", 20),
    ]
