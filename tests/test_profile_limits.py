"""Mixpanel's limits on user and group profiles (docs/ingestion.md): at most 2000 properties per profile,
names cut to 255 characters, objects nested at most 3 deep with at most 255 keys each, list and object
properties at most 256 KB. An update past a limit is refused with its reason; a profile at the limit
keeps what it had and refuses further additions. The review had a 10,000-property update accepted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, seed_catalog


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("profile-limits") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def engage(server: ServerProcess, update: dict[str, Any], path: str = "/engage") -> dict[str, Any]:
    body = {"$token": TOKEN, "$ignore_time": True, **update}
    response = httpx.post(f"{server.url}{path}", params={"verbose": "1"}, data={"data": orjson.dumps(body).decode()})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def profile(server: ServerProcess, distinct_id: str) -> dict[str, Any] | None:
    response = httpx.post(
        f"{server.url}/api/2.0/engage",
        data={"project_id": str(PROJECT_ID), "distinct_id": distinct_id},
        auth=(SA_USER, SA_SECRET),
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    return results[0]["$properties"] if results else None


def props(n: int, prefix: str = "p") -> dict[str, int]:
    return {f"{prefix}{i}": i for i in range(n)}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


OK = {"status": 1, "error": None}


def test_an_update_of_10000_properties_is_refused_and_nothing_is_stored(server: ServerProcess) -> None:
    answer = engage(server, {"$distinct_id": "many", "$set": props(10_000)})
    assert answer == {
        "status": 0,
        "error": "$set: an update sets at most 2000 properties, got 10000 (a profile holds at most 2000)",
    }
    assert profile(server, "many") is None


def test_2000_properties_are_taken_and_further_additions_fail(server: ServerProcess) -> None:
    assert engage(server, {"$distinct_id": "full", "$set": props(2000)}) == OK
    assert engage(server, {"$distinct_id": "full", "$set": props(2001)})["status"] == 0
    # Ten new names on a full profile: accepted as a request, but the profile does not grow; a change
    # to a property it has still applies.
    assert engage(server, {"$distinct_id": "full", "$set": {**props(10, "new"), "p7": "changed"}}) == OK
    stored = profile(server, "full")
    assert stored is not None and len(stored) == 2000
    assert stored["p7"] == "changed" and stored["p1999"] == 1999 and "new0" not in stored


@pytest.mark.parametrize("path", ["/engage", "/groups"])
def test_objects_nest_at_most_3_deep(server: ServerProcess, path: str) -> None:
    key = {"$distinct_id": "deep"} if path == "/engage" else {"$group_key": "company", "$group_id": "deep"}
    assert engage(server, {**key, "$set": {"ok": nested(3)}}, path) == OK
    assert engage(server, {**key, "$set": {"too": nested(4)}}, path) == {
        "status": 0,
        "error": "$set: 'too' is invalid: objects nest at most 3 deep",
    }


def test_objects_hold_at_most_255_keys(server: ServerProcess) -> None:
    assert engage(server, {"$distinct_id": "wide", "$set": {"o": props(255)}}) == OK
    assert engage(server, {"$distinct_id": "wide", "$union": {"l": [props(256)]}}) == {
        "status": 0,
        "error": "$union: 'l' is invalid: objects hold at most 255 keys",
    }


def test_list_properties_are_at_most_256_kb(server: ServerProcess) -> None:
    item = "x" * 1000
    fits = [item] * 250  # ~250 KB of JSON
    assert engage(server, {"$distinct_id": "long", "$set": {"l": fits}}) == OK
    too_long = [item] * 300
    assert engage(server, {"$distinct_id": "long", "$set": {"l": too_long}}) == {
        "status": 0,
        "error": "$set: 'l' is invalid: list and object properties are at most 262144 bytes",
    }


def test_long_property_names_are_cut_to_255_characters(server: ServerProcess) -> None:
    assert engage(server, {"$distinct_id": "names", "$set": {"n" * 300: 1}}) == OK
    assert profile(server, "names") == {"n" * 255: 1}
