"""GET /api/2.0/export (https://developer.mixpanel.com/reference/raw-event-export): date range, filters, limit, time units, order, gzip, errors,
and timezone handling, on a server of this module's own with events at known times."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.domain.project import TimeMode
from tests.conftest import today
from tests.server import SECRET, ServerProcess, seed_catalog

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

LA_ID, LA_SECRET = 6161, "SECRET-LA"  # America/Los_Angeles, times exported in project time (pre-2023 projects)
TOKYO_ID, TOKYO_SECRET = 6262, "SECRET-TOKYO"  # Asia/Tokyo, but true UTC times and UTC dates (newer projects)


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


BOUNDARY = [
    ("2024-03-09T23:59:59.999", "before"),
    ("2024-03-10T00:00:00", "first-day-start"),
    ("2024-03-11T23:59:59.999", "last-day-end"),
    ("2024-03-12T00:00:00", "after"),
]
UNSORTED = ["2024-04-02T10:00:00", "2024-04-01T08:00:00", "2024-04-02T09:59:59", "2024-04-01T08:00:00.500"]


def event(name: str, time_ms: int, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"distinct_id": "exp-user", "time": time_ms, **props}}


def import_events(server: ServerProcess, secret: str, events: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{server.url}/import", json=events, auth=(secret, ""))
    assert response.status_code == 200, response.text
    assert response.json()["num_records_imported"] == len(events)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("export") / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir,
        project_id=LA_ID,
        token="TOKEN-LA",
        secret=LA_SECRET,
        api_key="APIKEY-LA",
        timezone="America/Los_Angeles",
        time_mode=TimeMode.PROJECT,
        sa_user=None,
    )
    seed_catalog(
        data_dir,
        project_id=TOKYO_ID,
        token="TOKEN-TOKYO",
        secret=TOKYO_SECRET,
        api_key="APIKEY-TOKYO",
        timezone="Asia/Tokyo",
        sa_user=None,
    )
    server = ServerProcess(data_dir).start()
    import_events(server, SECRET, [event("boundary", ms(t), which=w) for t, w in BOUNDARY])
    import_events(server, SECRET, [event("unsorted", ms(t), i=i) for i, t in enumerate(UNSORTED)])
    import_events(
        server,
        SECRET,
        [event(name, ms("2024-05-01T12:00:00") + i, i=i) for i, name in enumerate(["a", "b", "c", "a b", "a"])],
    )
    import_events(server, SECRET, [event("bulk", ms("2024-06-01T00:00:00") + i, pad="x" * 200) for i in range(40)])
    # 03:00 UTC on the 15th is 19:00 on the 14th in Los Angeles; 09:00 UTC is 01:00 on the 15th there.
    zoned = [event("zoned", ms("2024-01-15T03:00:00"), which="la-14th"), event("zoned", ms("2024-01-15T09:00:00"))]
    zoned[1]["properties"]["which"] = "la-15th"
    import_events(server, LA_SECRET, zoned)
    # 20:00 UTC on the 15th is already the 16th in Tokyo.
    import_events(server, TOKYO_SECRET, [event("zoned", ms("2024-01-15T20:00:00"), which="tokyo")])
    yield server
    server.stop()


def get(
    server: ServerProcess, secret: str = SECRET, headers: dict[str, str] | None = None, **params: str
) -> httpx.Response:
    return httpx.get(f"{server.url}/api/2.0/export", params=params, auth=(secret, ""), headers=headers)


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line]


def names(*events: str) -> str:
    return orjson.dumps(list(events)).decode()


def test_dates_are_inclusive_in_utc(exports: ServerProcess) -> None:
    rows = lines(get(exports, from_date="2024-03-10", to_date="2024-03-11", event=names("boundary")))
    assert [r["properties"]["which"] for r in rows] == ["first-day-start", "last-day-end"]
    one_day = lines(get(exports, from_date="2024-03-09", to_date="2024-03-09", event=names("boundary")))
    assert [r["properties"]["which"] for r in one_day] == ["before"]
    wide = lines(get(exports, from_date="2024-03-01", to_date="2024-03-31", event=names("boundary")))
    assert len(wide) == 4


def test_body_is_jsonl_with_distinct_id_inside_properties(exports: ServerProcess) -> None:
    response = get(exports, from_date="2024-03-10", to_date="2024-03-10", event=names("boundary"))
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content.endswith(b"\n")
    [row] = lines(response)
    assert set(row) == {"event", "properties"}
    assert row["event"] == "boundary"
    assert row["properties"]["distinct_id"] == "exp-user"
    assert row["properties"]["time"] == ms("2024-03-10T00:00:00") // 1000
    assert row["properties"]["$import"] is True


def test_no_events_is_an_empty_body(exports: ServerProcess) -> None:
    response = get(exports, from_date="2024-03-10", to_date="2024-03-11", event=names("never-sent"))
    assert response.status_code == 200
    assert response.content == b""


def test_event_filter_takes_a_json_array(exports: ServerProcess) -> None:
    day = {"from_date": "2024-05-01", "to_date": "2024-05-01"}
    assert [r["event"] for r in lines(get(exports, **day, event=names("a", "c")))] == ["a", "c", "a"]
    assert [r["event"] for r in lines(get(exports, **day, event=names("a b")))] == ["a b"]
    assert [r["event"] for r in lines(get(exports, **day))] == ["a", "b", "c", "a b", "a"]


def test_limit(exports: ServerProcess) -> None:
    rows = lines(get(exports, from_date="2024-05-01", to_date="2024-05-01", limit="2"))
    assert [r["properties"]["i"] for r in rows] == [0, 1]
    too_big = get(exports, from_date="2024-05-01", to_date="2024-05-01", limit="100001")
    assert too_big.status_code == 400
    assert "limit" in too_big.json()["error"]


def test_time_in_ms(exports: ServerProcess) -> None:
    params = {"from_date": "2024-03-09", "to_date": "2024-03-09", "event": names("boundary")}
    [seconds] = lines(get(exports, **params))
    [millis] = lines(get(exports, **params, time_in_ms="true"))
    [false] = lines(get(exports, **params, time_in_ms="false"))
    assert seconds["properties"]["time"] == false["properties"]["time"] == ms("2024-03-09T23:59:59") // 1000
    assert millis["properties"]["time"] == ms("2024-03-09T23:59:59.999")


def test_sorted_by_time(exports: ServerProcess) -> None:
    rows = lines(get(exports, from_date="2024-04-01", to_date="2024-04-02", event=names("unsorted"), time_in_ms="1"))
    assert [r["properties"]["time"] for r in rows] == sorted(ms(t) for t in UNSORTED)
    assert [r["properties"]["i"] for r in rows] == [1, 3, 2, 0]


def test_gzip_when_asked(exports: ServerProcess) -> None:
    params = {"from_date": "2024-06-01", "to_date": "2024-06-01", "event": names("bulk")}
    plain = get(exports, headers={"Accept-Encoding": "identity"}, **params)
    assert len(plain.content) > 1400
    assert "content-encoding" not in plain.headers
    url = f"{exports.url}/api/2.0/export"
    with httpx.stream("GET", url, params=params, auth=(SECRET, ""), headers={"Accept-Encoding": "gzip"}) as response:
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        raw = b"".join(response.iter_raw())
    assert len(raw) < len(plain.content)
    assert gzip.decompress(raw) == plain.content
    assert len(lines(plain)) == 40


def test_gzip_when_asked_however_small_the_body(exports: ServerProcess) -> None:
    # Mixpanel gzips every export when asked: a client writing the raw stream to a .gz file needs it.
    params = {"from_date": "2024-03-10", "to_date": "2024-03-10", "event": names("boundary")}
    url = f"{exports.url}/api/2.0/export"
    with httpx.stream("GET", url, params=params, auth=(SECRET, ""), headers={"Accept-Encoding": "gzip"}) as response:
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        raw = b"".join(response.iter_raw())
    body = gzip.decompress(raw)
    assert len(body) < 1400
    assert len(body.splitlines()) == 1
    # An empty result is an empty gzip member, still a valid .gz file.
    empty = {"from_date": "2024-03-10", "to_date": "2024-03-10", "event": '["no such event"]'}
    with httpx.stream("GET", url, params=empty, auth=(SECRET, ""), headers={"Accept-Encoding": "gzip"}) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert gzip.decompress(b"".join(response.iter_raw())) == b""
    # Without gzip in Accept-Encoding the body is plain.
    plain = get(exports, headers={"Accept-Encoding": "identity"}, **params)
    assert "content-encoding" not in plain.headers
    assert plain.content == body


def test_to_date_later_than_today_is_a_400(exports: ServerProcess) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")
    response = get(exports, from_date="2024-01-01", to_date=tomorrow)
    assert response.status_code == 400
    assert response.json()["error"] == "to_date cannot be later than today"
    assert response.json()["request"].startswith("/api/2.0/export?")
    assert get(exports, from_date="2024-01-01", to_date=today()).status_code == 200


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"from_date": "2024-03-12", "to_date": "2024-03-10"}, "from_date"),
        ({"from_date": "2024-3-1x", "to_date": "2024-03-10"}, "from_date"),
        ({"from_date": "2024-03-01", "to_date": "tomorrow"}, "to_date"),
        ({"to_date": "2024-03-10"}, "from_date"),
        ({"from_date": "2024-03-01"}, "to_date"),
        ({"from_date": "2024-03-01", "to_date": "2024-03-10", "event": "boundary"}, "event"),
        ({"from_date": "2024-03-01", "to_date": "2024-03-10", "limit": "ten"}, "limit"),
    ],
)
def test_bad_parameters_are_a_400(exports: ServerProcess, params: dict[str, str], fragment: str) -> None:
    response = get(exports, **params)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_project_timezone_mode_shifts_times_and_reads_dates_in_zone(exports: ServerProcess) -> None:
    day_14 = lines(get(exports, LA_SECRET, from_date="2024-01-14", to_date="2024-01-14", event=names("zoned")))
    assert [r["properties"]["which"] for r in day_14] == ["la-14th"]
    # Exported as the Los Angeles wall-clock time read as if it were UTC: 8 hours earlier in January.
    assert day_14[0]["properties"]["time"] == ms("2024-01-14T19:00:00") // 1000
    day_15 = lines(get(exports, LA_SECRET, from_date="2024-01-15", to_date="2024-01-15", event=names("zoned")))
    assert [r["properties"]["which"] for r in day_15] == ["la-15th"]
    assert day_15[0]["properties"]["time"] == ms("2024-01-15T01:00:00") // 1000
    in_ms = lines(get(exports, LA_SECRET, from_date="2024-01-15", to_date="2024-01-15", time_in_ms="true"))
    assert in_ms[0]["properties"]["time"] == ms("2024-01-15T01:00:00")


def test_utc_mode_project_ignores_its_timezone_for_export(exports: ServerProcess) -> None:
    day_15 = lines(get(exports, TOKYO_SECRET, from_date="2024-01-15", to_date="2024-01-15"))
    assert [r["properties"]["which"] for r in day_15] == ["tokyo"]
    assert day_15[0]["properties"]["time"] == ms("2024-01-15T20:00:00") // 1000
    assert lines(get(exports, TOKYO_SECRET, from_date="2024-01-16", to_date="2024-01-16")) == []


def test_where_filters_exported_events(exports: ServerProcess) -> None:
    both = lines(get(exports, from_date="2024-03-10", to_date="2024-03-11", event=names("boundary")))
    assert len(both) == 2
    only = lines(
        get(
            exports,
            from_date="2024-03-10",
            to_date="2024-03-11",
            where='properties["$distinct_id"] == "exp-user" and properties["which"] == "last-day-end"',
        )
    )
    assert [r["properties"]["which"] for r in only] == ["last-day-end"]
    none = get(exports, from_date="2024-03-10", to_date="2024-03-11", where='properties["$distinct_id"] == "nobody"')
    assert none.status_code == 200 and none.content == b""


def test_bad_where_answers_400_with_a_caret(exports: ServerProcess) -> None:
    response = get(exports, from_date="2024-05-01", to_date="2024-05-01", where='properties["i"] == = 1')
    assert response.status_code == 400
    error = response.json()["error"]
    assert "column 20" in error and error.endswith("\n" + " " * 19 + "^")


def test_post_export_reads_form_parameters(exports: ServerProcess) -> None:
    response = httpx.post(
        f"{exports.url}/api/2.0/export",
        data={"from_date": "2024-03-10", "to_date": "2024-03-11", "event": names("boundary")},
        auth=(SECRET, ""),
    )
    assert len(lines(response)) == 2


def test_any_characters_round_trip_as_one_json_line_each(exports: ServerProcess) -> None:
    tricky = ['quo"te', "back\\slash", "new\nline", "ctl\x01x", "emoji😀", "tab\there", "sep\u2028x", "nul\x00x"]
    events = [
        {"event": n, "properties": {"distinct_id": n, "time": ms("2024-07-01T00:00:00") + i, "p": n, n: [n]}}
        for i, n in enumerate(tricky)
    ]
    import_events(exports, SECRET, events)
    response = get(exports, from_date="2024-07-01", to_date="2024-07-01", time_in_ms="true")
    raw_lines = response.content.split(b"\n")
    assert raw_lines[-1] == b""
    rows = [orjson.loads(line) for line in raw_lines[:-1]]
    assert [r["event"] for r in rows] == tricky
    for row in rows:
        name = row["event"]
        assert row["properties"]["distinct_id"] == row["properties"]["p"] == name
        assert row["properties"][name] == [name]
