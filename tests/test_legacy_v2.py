"""Legacy Data API v2 (Mixpanel's legacy Data Export API v2 documentation): signed requests (api_key + expire + sig = md5 of the sorted
`key=value` pairs + the API secret, `callback` excluded), v2's exact error strings in `{"error","request"}`
bodies, `unit` + `interval` counted back from now, `format=csv` and JSONP."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from tests.server import ServerProcess, seed_catalog

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

PROJECT, TOKEN, SECRET, API_KEY = 7301, "V2-TOKEN", "V2-SECRET", "V2-APIKEY"


def sign(params: dict[str, str], secret: str = SECRET) -> str:
    """The v2 documentation's signing, step by step: all parameters but sig (and callback), sorted by key, `key=value` joined
    with no separator, the API secret appended, md5 hex digest."""
    args = {k: v for k, v in params.items() if k not in ("sig", "callback")}
    args_concat = "".join(f"{k}={args[k]}" for k in sorted(args))
    return hashlib.md5((args_concat + secret).encode("utf-8")).hexdigest()


def signed(params: dict[str, str], *, expire_in: int = 600, callback: str | None = None) -> dict[str, str]:
    out = {**params, "api_key": API_KEY, "expire": str(int(time.time()) + expire_in)}
    out["sig"] = sign(out)
    if callback:
        out["callback"] = callback
    return out


def utc_day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("v2") / "data"
    seed_catalog(data_dir, project_id=PROJECT, token=TOKEN, secret=SECRET, api_key=API_KEY, sa_user=None)
    server = ServerProcess(data_dir).start()
    now = datetime.now(UTC)
    today_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Today (between midnight and now), yesterday at noon (twice, two users) and 40 days ago.
    today_ms = int((today_start + (now - today_start) / 2).timestamp() * 1000)
    yesterday_ms = int((today_start - timedelta(hours=12)).timestamp() * 1000)
    old_ms = int((today_start - timedelta(days=40)).timestamp() * 1000)
    events: list[dict[str, Any]] = [
        {"event": "splash features", "properties": {"distinct_id": "u1", "time": today_ms, "feature": "a"}},
        {"event": "splash features", "properties": {"distinct_id": "u1", "time": yesterday_ms, "feature": "b"}},
        {"event": "splash features", "properties": {"distinct_id": "u2", "time": yesterday_ms + 1, "feature": "b"}},
        {"event": "account-page", "properties": {"distinct_id": "u2", "time": old_ms}},
    ]
    response = httpx.post(f"{server.url}/import", json=events, auth=(SECRET, ""))
    assert response.status_code == 200, response.text
    yield server
    server.stop()


def get(server: ServerProcess, path: str, params: dict[str, str]) -> httpx.Response:
    # Encoded by hand, like old clients: the server must verify the signature on the decoded values.
    return httpx.get(f"{server.url}/api/2.0/{path}?{urlencode(params)}", timeout=30)


def test_signature_matches_the_seed_example() -> None:
    # The v2 documentation's worked example of args_concat, signed with a made-up secret.
    params = {
        "api_key": "ed0b8ff6cc3fbb37a521b40019915f18",
        "event": '["pages"]',
        "expire": "1248499222",
        "format": "json",
        "interval": "24",
        "unit": "hour",
    }
    concat = 'api_key=ed0b8ff6cc3fbb37a521b40019915f18event=["pages"]expire=1248499222format=jsoninterval=24unit=hour'
    assert sign(params, "s3cr3t") == hashlib.md5((concat + "s3cr3t").encode()).hexdigest()


def test_signed_events_request_is_accepted(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features", "account-page"]', "type": "general", "unit": "day", "interval": "2"})
    response = get(v2, "events/", params)  # trailing slash as in the v2 documentation's URLs
    assert response.status_code == 200, response.text
    today, yesterday = utc_day(0), utc_day(1)
    assert response.json() == {
        "data": {
            "series": [yesterday, today],
            "values": {
                "splash features": {yesterday: 2, today: 1},
                "account-page": {yesterday: 0, today: 0},
            },
        },
        "legend_size": 2,
    }


def test_signed_unique_and_month_interval(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"]', "type": "unique", "unit": "month", "interval": "1"})
    body = get(v2, "events", params).json()
    month = datetime.now(UTC).strftime("%Y-%m-01")
    assert body["data"]["series"] == [month]
    # Yesterday may fall in the previous month; then only today's user is in this month's bucket.
    expected = 2 if utc_day(1)[:7] == month[:7] else 1
    assert body["data"]["values"]["splash features"][month] == expected


def test_signed_hour_interval_is_the_last_hours(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"]', "type": "general", "unit": "hour", "interval": "24"})
    series = get(v2, "events", params).json()["data"]["series"]
    assert len(series) == 24
    assert series[-1] == datetime.now(UTC).strftime("%Y-%m-%d %H:00:00")


def test_signed_event_properties_shapes(v2: ServerProcess) -> None:
    params = signed({"event": "splash features", "name": "feature", "type": "general", "unit": "day", "interval": "2"})
    body = get(v2, "events/properties", params).json()
    today, yesterday = utc_day(0), utc_day(1)
    assert body == {
        "data": {
            "series": [yesterday, today],
            "values": {"b": {yesterday: 2, today: 0}, "a": {yesterday: 0, today: 1}},
        },
        "legend_size": 2,
    }
    top = get(v2, "events/properties/top", signed({"event": "splash features", "unit": "day", "interval": "2"}))
    assert top.json()["feature"] == {"count": 3}
    values = get(
        v2, "events/properties/values", signed({"event": "splash features", "name": "feature", "interval": "2"})
    )
    assert values.json() == ["b", "a"]
    names = get(v2, "events/names", signed({"type": "general", "unit": "day", "interval": "2"}))
    assert names.json() == ["splash features"]


def test_callback_is_not_signed_and_wraps_the_reply(v2: ServerProcess) -> None:
    params = signed(
        {"event": '["splash features"]', "type": "general", "unit": "day", "interval": "1"}, callback="mpSuccess0"
    )
    response = get(v2, "events", params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/javascript")
    text = response.text
    assert text.startswith("mpSuccess0(") and text.endswith(");")
    assert orjson.loads(text[len("mpSuccess0(") : -2])["data"]["values"]["splash features"] == {utc_day(0): 1}


def test_csv(v2: ServerProcess) -> None:
    params = signed(
        {"event": '["splash features"]', "type": "general", "unit": "day", "interval": "2", "format": "csv"}
    )
    response = get(v2, "events", params)
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text == f"event,{utc_day(1)},{utc_day(0)}\nsplash features,2,1\n"


def _error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {"error": message, "request": body["request"]}
    assert body["request"].startswith("/api/2.0/")


def test_wrong_signature(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"]', "type": "general", "unit": "day", "interval": "2"})
    params["sig"] = "0" * 32
    _error(get(v2, "events", params), 400, "Invalid request signature")


def test_signature_over_other_values(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"]', "type": "general", "unit": "day", "interval": "2"})
    params["interval"] = "3"  # changed after signing
    _error(get(v2, "events", params), 400, "Invalid request signature")


def test_expired_request(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"]', "type": "general", "unit": "day", "interval": "2"}, expire_in=-60)
    _error(get(v2, "events", params), 400, "Expired request")


def test_missing_sig(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"]', "type": "general", "unit": "day", "interval": "2"})
    del params["sig"]
    _error(get(v2, "events", params), 400, "Missing required parameter: sig")


def test_missing_expire(v2: ServerProcess) -> None:
    params = {"api_key": API_KEY, "type": "general"}
    params["sig"] = sign(params)
    _error(get(v2, "events/top", params), 400, "Missing required parameter: expire")


def test_invalid_api_key(v2: ServerProcess) -> None:
    params = {"api_key": "nope", "expire": str(int(time.time()) + 600), "type": "general"}
    params["sig"] = sign(params)
    _error(get(v2, "events/top", params), 401, "Invalid API key")


def test_invalid_parameter_unit(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"]', "type": "general", "unit": "dayy", "interval": "7"})
    _error(get(v2, "events", params), 400, "Invalid parameter: unit")


def test_invalid_json_format(v2: ServerProcess) -> None:
    params = signed({"event": '["splash features"', "type": "general", "unit": "day", "interval": "7"})
    _error(get(v2, "events", params), 400, "Invalid JSON Format: event")


def test_missing_required_parameter(v2: ServerProcess) -> None:
    params = signed({"type": "general", "unit": "day", "interval": "7"})
    _error(get(v2, "events", params), 400, "Missing required parameter: event")


def test_invalid_endpoint(v2: ServerProcess) -> None:
    params = signed({"type": "general"})
    response = get(v2, "events/general", params)
    _error(response, 404, "Invalid endpoint: /api/2.0/events/general")


def test_errors_are_jsonp_too(v2: ServerProcess) -> None:
    params = signed({"event": '["x"]', "type": "general", "unit": "dayy", "interval": "7"}, callback="cb")
    response = get(v2, "events", params)
    assert response.status_code == 400
    assert response.text.startswith('cb({"request":') and '"error":"Invalid parameter: unit"' in response.text


# -- the signature on every v2 endpoint, raw export included ----------------------------------------


def test_signed_export_without_authorization(v2: ServerProcess) -> None:
    params = signed({"from_date": utc_day(1), "to_date": utc_day(0), "event": '["splash features"]'})
    response = get(v2, "export", params)
    assert response.status_code == 200, response.text
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert sorted(r["properties"]["feature"] for r in rows) == ["a", "b", "b"]
    params["sig"] = "0" * 32
    _error(get(v2, "export", params), 400, "Invalid request signature")
    unsigned = {"from_date": utc_day(1), "to_date": utc_day(0), "api_key": API_KEY}
    _error(get(v2, "export", unsigned), 400, "Missing required parameter: sig")


@pytest.mark.parametrize("path", ["export", "events/top", "funnels/list", "engage", "retention"])
def test_every_v2_endpoint_takes_a_signature(v2: ServerProcess, path: str) -> None:
    params = signed({"from_date": utc_day(1), "to_date": utc_day(0), "born_event": "splash features"})
    response = get(v2, path, params)
    assert response.status_code == 200, response.text
    params["expire"] = str(int(time.time()) - 5)
    params["sig"] = sign(params)
    _error(get(v2, path, params), 400, "Expired request")


def test_the_rate_limiter_counts_signed_requests(v2: ServerProcess) -> None:
    catalog = Catalog(v2.data_dir)
    catalog.set_rate_limits(PROJECT, '{"export": {"per_minute": 2}, "query": {"per_minute": 2}}')
    try:
        export = signed({"from_date": utc_day(0), "to_date": utc_day(0)})
        assert [get(v2, "export", export).status_code for _ in range(3)] == [200, 200, 429]
        top = signed({"type": "general"})
        answers = [get(v2, "events/top", top) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert "Retry-After" in answers[2].headers
    finally:
        catalog.set_rate_limits(PROJECT, "none")
