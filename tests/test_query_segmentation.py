"""Segmentation family and event breakdowns against hand-computed golden files
(tests/golden/segmentation/*.json: events in, request, full expected response, the rule and its source).

Each golden file gets a project of its own (its timezone, its events, its profiles) on one server, so
cases cannot see each other's data. Error cases of these endpoints follow the golden ones."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.server import ServerProcess, seed_catalog

GOLDEN = Path(__file__).parent / "golden" / "segmentation"
FILES = sorted(GOLDEN.glob("*.json"))
BASE_PROJECT = 7100


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def _secret(index: int) -> str:
    return f"SEG-SECRET-{index}"


def _with_ms(event: dict[str, Any]) -> dict[str, Any]:
    props = dict(event["properties"])
    props["time"] = int(datetime.fromisoformat(props["time"].replace("Z", "+00:00")).timestamp() * 1000)
    return {"event": event["event"], "properties": props}


@pytest.fixture(scope="module")
def golden_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("segmentation") / "data"
    seed_catalog(data_dir)
    for i, path in enumerate(FILES):
        seed_catalog(
            data_dir,
            project_id=BASE_PROJECT + i,
            token=f"SEG-TOKEN-{i}",
            secret=_secret(i),
            api_key=f"SEG-KEY-{i}",
            timezone=_load(path)["timezone"],
            sa_user=None,
        )
    server = ServerProcess(data_dir).start()
    for i, path in enumerate(FILES):
        golden = _load(path)
        if golden["events"]:
            events = [_with_ms(e) for e in golden["events"]]
            response = httpx.post(f"{server.url}/import", json=events, auth=(_secret(i), ""))
            assert response.status_code == 200, response.text
        for update in golden.get("profiles", []):
            body = orjson.dumps({"$token": f"SEG-TOKEN-{i}", **update}).decode()
            response = httpx.post(f"{server.url}/engage", data={"data": body, "verbose": "1"})
            assert response.json()["status"] == 1, response.text
    yield server
    server.stop()


def _cases() -> list[Any]:
    out = []
    for i, path in enumerate(FILES):
        for case in _load(path)["cases"]:
            out.append(pytest.param(i, case, id=f"{path.stem}: {case['name']}"))
    return out


def _same(actual: Any, expected: Any, ignore: frozenset[str], where: str = "$") -> None:
    """Equal JSON, floats to 1e-9 relative; keys in `ignore` only need to be present."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            if key not in ignore:
                _same(actual[key], value, ignore, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for n, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _same(a, e, ignore, f"{where}[{n}]")
    elif isinstance(expected, float) or isinstance(actual, float):
        assert isinstance(actual, int | float) and not isinstance(actual, bool), f"{where}: {actual!r}"
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == expected and type(actual) is type(expected), f"{where}: {actual!r} != {expected!r}"


@pytest.mark.parametrize(("index", "case"), _cases())
def test_golden(golden_server: ServerProcess, index: int, case: dict[str, Any]) -> None:
    response = httpx.get(
        f"{golden_server.url}/api/query/{case['path']}", params=case["params"], auth=(_secret(index), ""), timeout=30
    )
    assert response.status_code == 200, response.text
    if "expected_text" in case:
        assert response.headers["content-type"].startswith("text/csv")
        assert response.text == case["expected_text"]
        return
    body = response.json()
    _same(body, case["expected"], frozenset(case.get("ignore", [])))
    if "ordered_keys" in case:
        values = body.get("data", {}).get("values") if isinstance(body.get("data"), dict) else None
        if values is None:
            values = body.get("results", body)
        assert list(values) == case["ordered_keys"]
    if isinstance(body, dict) and "data" in body:
        # Series are chronological: the labels sort as text in every unit's format.
        assert body["data"]["series"] == sorted(body["data"]["series"])


def test_golden_files_say_why() -> None:
    assert len(FILES) >= 10
    for path in FILES:
        golden = _load(path)
        assert golden["rule"] and golden["source"] and golden["cases"], path.name


# -- errors -------------------------------------------------------------------------------------------


def _get(server: ServerProcess, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/query/{path}", params=params, auth=(_secret(0), ""), timeout=30)


DATES = {"from_date": "2024-03-09", "to_date": "2024-03-11"}


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("segmentation", DATES, "Missing required parameter: event"),
        ("segmentation", {"event": "Login", "to_date": "2024-03-11"}, "Missing required parameter: from_date"),
        ("segmentation", {"event": "Login", **DATES, "unit": "dayy"}, "Invalid parameter: unit"),
        ("segmentation", {"event": "Login", **DATES, "type": "median"}, "Invalid parameter: type"),
        ("segmentation", {"event": "Login", **DATES, "limit": "0"}, "Invalid parameter: limit"),
        ("segmentation", {"event": "Login", **DATES, "limit": "ten"}, "Invalid parameter: limit"),
        ("segmentation", {"event": "Login", **DATES, "format": "xml"}, "Invalid parameter: format"),
        ("segmentation", {"event": "Login", "from_date": "2024-03-11", "to_date": "2024-03-09"}, None),
        ("segmentation", {"event": "Login", "from_date": "2024-03-01", "to_date": "2999-01-01"}, None),
        ("segmentation/numeric", {"event": "Login", **DATES}, "Missing required parameter: on"),
        ("segmentation/numeric", {"event": "Login", **DATES, "on": "1", "buckets": "0"}, "Invalid parameter: buckets"),
        ("segmentation/sum", {"event": "Login", **DATES}, "Missing required parameter: on"),
        ("segmentation/average", {"event": "Login", **DATES}, "Missing required parameter: on"),
        ("segmentation/multiseg", {"event": "Login", **DATES, "outer": "1"}, "Missing required parameter: inner"),
        ("events", DATES, "Missing required parameter: event"),
        ("events", {"event": '["a"', **DATES}, "Invalid JSON Format: event"),
        ("events", {"event": "[1, 2]", **DATES}, "Invalid parameter: event"),
        ("events/properties", {"event": "Login", **DATES}, "Missing required parameter: name"),
        ("events/properties", {"name": "plan", **DATES}, "Missing required parameter: event"),
        ("events/properties", {"event": "A", "name": "p", "values": "{}", **DATES}, "Invalid parameter: values"),
        ("events/properties/values", DATES, "Missing required parameter: name"),
        ("events/top", {"type": "x"}, "Invalid parameter: type"),
    ],
)
def test_bad_parameters(golden_server: ServerProcess, path: str, params: dict[str, str], message: str | None) -> None:
    response = _get(golden_server, path, **params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["request"].startswith(f"/api/query/{path}?")
    if message is not None:
        assert body["error"] == message
    elif params.get("to_date", "").startswith("2999"):
        assert body["error"] == "to_date cannot be later than today"
    else:
        assert body["error"] == "from_date cannot be later than to_date"


@pytest.mark.parametrize(
    ("path", "param"),
    [("segmentation", "where"), ("segmentation", "on"), ("segmentation/multiseg", "inner"), ("segmentation/sum", "on")],
)
def test_bad_expression_answers_400_with_caret(golden_server: ServerProcess, path: str, param: str) -> None:
    params = {"event": "Login", **DATES, "outer": "1", "inner": "1", "on": "1", param: 'properties["x" == 1'}
    response = _get(golden_server, path, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    lines = error.split("\n")
    assert "at column 16" in lines[0]
    assert lines[1] == 'properties["x" == 1'
    assert lines[2] == " " * 15 + "^"


def test_engage_properties_bad_where(golden_server: ServerProcess) -> None:
    response = _get(golden_server, "engage/properties", where="properties[")
    assert response.status_code == 400
    assert "^" in response.json()["error"]


def test_too_many_minute_buckets_is_refused(golden_server: ServerProcess) -> None:
    response = _get(
        golden_server, "segmentation", event="Login", from_date="2020-01-01", to_date="2024-01-01", unit="minute"
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid parameter: unit")


def test_minute_buckets(golden_server: ServerProcess) -> None:
    # dst_buckets.json holds Login at 2024-03-10T05:30Z = 00:30 EST, 06:59Z = 01:59 EST, 07:00Z = 03:00 EDT...
    index = [p.stem for p in FILES].index("dst_buckets")
    response = httpx.get(
        f"{golden_server.url}/api/query/segmentation",
        params={"event": "Login", "from_date": "2024-03-10", "to_date": "2024-03-10", "unit": "minute"},
        auth=(_secret(index), ""),
    )
    body = response.json()
    series = body["data"]["series"]
    assert len(series) == 23 * 60  # the skipped hour has no minutes
    assert series[0] == "2024-03-10 00:00:00" and series[-1] == "2024-03-10 23:59:00"
    values = body["data"]["values"]["Login"]
    assert {k: v for k, v in values.items() if v} == {
        "2024-03-10 00:30:00": 1,
        "2024-03-10 01:59:00": 1,
        "2024-03-10 03:00:00": 1,
        "2024-03-10 03:30:00": 1,
        "2024-03-10 23:59:00": 1,
    }


def test_numeric_span_too_wide_is_a_400(golden_server: ServerProcess) -> None:
    index = [p.stem for p in FILES].index("numeric_buckets")
    response = httpx.get(
        f"{golden_server.url}/api/query/segmentation/numeric",
        params={"event": "Huge", "from_date": "2024-09-01", "to_date": "2024-09-01", "on": 'properties["v"]'},
        auth=(_secret(index), ""),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("Invalid parameter: on")
