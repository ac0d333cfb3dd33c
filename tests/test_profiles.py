"""User and group profile updates over /engage and /groups, read back from the stopped server's store.

The operation cases share one server: a module fixture sends every case's requests (each case to a
distinct_id of its own), stops the server and opens the data dir's engine, so that each case checks
the profile exactly as the server left it. The other tests use a server of their own."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.engine.duckdb import DuckDBEngine
from tests.server import PROJECT_ID, TOKEN, ServerProcess, seed_catalog

Update = dict[str, Any]
Profile = dict[str, object] | None


def user(distinct_id: str, **ops: Any) -> Update:
    return {"$token": TOKEN, "$distinct_id": distinct_id, **ops}


def group(group_key: str, group_id: str | int, **ops: Any) -> Update:
    return {"$token": TOKEN, "$group_key": group_key, "$group_id": group_id, **ops}


def send(server: ServerProcess, *updates: Update, path: str = "/engage") -> dict[str, Any]:
    """Post the updates as one request (PyPI SDK form: raw JSON in `data`, verbose=1)."""
    payload: Any = updates[0] if len(updates) == 1 else list(updates)
    response = httpx.post(f"{server.url}{path}", data={"data": orjson.dumps(payload).decode(), "verbose": "1"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def profiles(server: ServerProcess, *distinct_ids: str) -> dict[str, Profile]:
    server.stop()
    engine = DuckDBEngine(server.data_dir)
    try:
        return {d: engine.profile(PROJECT_ID, d) for d in distinct_ids}
    finally:
        engine.close()


def without_last_seen(profile: Profile) -> dict[str, object]:
    assert profile is not None
    return {k: v for k, v in profile.items() if k != "$last_seen"}


T0 = int(time.time()) - 3 * 86400  # every case's updates carry this $time unless they give their own
T1 = T0 + 2 * 86400


def last_seen(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S")


# case (= distinct_id): (requests, each a list of operation objects; the profile expected afterwards)
CASES: dict[str, tuple[list[list[dict[str, Any]]], Profile]] = {
    "set-creates-and-overwrites": (
        [
            [{"$set": {"plan": "free", "seats": 1, "$email": "a@b.c"}}],
            [{"$set": {"plan": "pro", "nested": {"k": [1]}}}],
        ],
        {"plan": "pro", "seats": 1, "$email": "a@b.c", "nested": {"k": [1]}, "$last_seen": last_seen(T0)},
    ),
    "set-once-only-sets-missing-keys": (
        [[{"$set_once": {"first": "monday"}}], [{"$set_once": {"first": "tuesday", "source": "ads"}}]],
        {"first": "monday", "source": "ads", "$last_seen": last_seen(T0)},
    ),
    "add-increments-from-zero": (
        [[{"$add": {"logins": 1}}], [{"$add": {"logins": 2, "balance": -2.5}}], [{"$add": {"logins": -1}}]],
        {"logins": 2, "balance": -2.5, "$last_seen": last_seen(T0)},
    ),
    "append-adds-one-value-without-dedup": (
        [[{"$append": {"pages": "home"}}], [{"$append": {"pages": "home"}}], [{"$append": {"pages": ["a", "b"]}}]],
        {"pages": ["home", "home", ["a", "b"]], "$last_seen": last_seen(T0)},
    ),
    "union-keeps-each-value-once": (
        [[{"$union": {"tags": ["a", "b"]}}], [{"$union": {"tags": ["b", "c", "c"], "ids": [1, 2]}}]],
        {"tags": ["a", "b", "c"], "ids": [1, 2], "$last_seen": last_seen(T0)},
    ),
    "remove-takes-a-value-out-of-a-list": (
        [[{"$set": {"tags": ["a", "b", "a"], "name": "x"}}], [{"$remove": {"tags": "a"}}], [{"$remove": {"no": 1}}]],
        {"tags": ["b"], "name": "x", "$last_seen": last_seen(T0)},
    ),
    "unset-deletes-properties": (
        [[{"$set": {"a": 1, "b": 2, "c": 3}}], [{"$unset": ["a", "c", "never-there"]}]],
        {"b": 2, "$last_seen": last_seen(T0)},
    ),
    "delete-removes-the-profile": ([[{"$set": {"a": 1}}], [{"$delete": ""}]], None),
    "delete-null-removes-the-profile": ([[{"$set": {"a": 1}}], [{"$delete": None}]], None),
    "set-after-delete-starts-afresh": (
        [[{"$set": {"old": 1}}], [{"$delete": ""}], [{"$set": {"new": 2}}]],
        {"new": 2, "$last_seen": last_seen(T0)},
    ),
    "unset-does-not-create": ([[{"$unset": ["a"]}]], None),
    "remove-does-not-create": ([[{"$remove": {"a": 1}}]], None),
    "last-seen-follows-time": (
        [[{"$set": {"a": 1}}], [{"$set": {"a": 2}, "$time": T1}]],
        {"a": 2, "$last_seen": last_seen(T1)},
    ),
    "ignore-time-leaves-last-seen-alone": (
        [[{"$set": {"a": 1}}], [{"$set": {"a": 2}, "$time": T1, "$ignore_time": True}]],
        {"a": 2, "$last_seen": last_seen(T0)},
    ),
    "ignore-time-on-creation-sets-no-last-seen": ([[{"$set": {"a": 1}, "$ignore_time": True}]], {"a": 1}),
    "batch-applied-in-order": (
        [
            [
                {"$set": {"n": 1, "log": []}},
                {"$add": {"n": 10}},
                {"$set_once": {"n": 99}},
                {"$append": {"log": "first"}},
                {"$unset": ["n"]},
                {"$add": {"n": 5}},
                {"$append": {"log": "second"}},
                {"$remove": {"log": "first"}},
            ],
            [{"$set": {"n": 7}}],
            [{"$add": {"n": 1}}],
        ],
        {"n": 8, "log": ["second"], "$last_seen": last_seen(T0)},
    ),
}


@pytest.fixture(scope="module")
def case_profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Profile]:
    data_dir = tmp_path_factory.mktemp("profiles") / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    try:
        for case, (requests, _) in CASES.items():
            for ops in requests:
                updates = [{"$time": T0, **user(case, **op)} for op in ops]
                assert send(server, *updates) == {"status": 1, "error": None}, case
    finally:
        server.stop()
    engine = DuckDBEngine(data_dir)
    try:
        return {case: engine.profile(PROJECT_ID, case) for case in CASES}
    finally:
        engine.close()


@pytest.mark.parametrize("case", list(CASES))
def test_operation(case_profiles: dict[str, Profile], case: str) -> None:
    assert case_profiles[case] == CASES[case][1]


def test_every_body_encoding_reaches_engage(fresh_server: ServerProcess) -> None:
    url = f"{fresh_server.url}/engage"
    b64 = base64.b64encode(orjson.dumps(user("b64", **{"$set": {"via": "form-base64"}}))).decode()
    assert httpx.post(url, data={"data": b64}).content == b"1"
    get = base64.b64encode(orjson.dumps(user("get", **{"$set": {"via": "get"}}))).decode()
    assert httpx.get(url, params={"data": get}).content == b"1"
    body = orjson.dumps([user("json", **{"$set": {"via": "json-array"}})])
    assert httpx.post(url, content=body, headers={"Content-Type": "application/json"}).content == b"1"
    found = profiles(fresh_server, "b64", "get", "json")
    assert {k: without_last_seen(v)["via"] for k, v in found.items()} == {
        "b64": "form-base64",
        "get": "get",
        "json": "json-array",
    }


def test_invalid_updates_fail_alone(fresh_server: ServerProcess) -> None:
    reply = send(
        fresh_server,
        user("good-1", **{"$set": {"a": 1}}),
        user("bad-add", **{"$add": {"n": "not a number"}}),
        {"$distinct_id": "no-token", "$set": {"a": 1}},
        user("bad-union", **{"$union": {"tags": "not a list"}}),
        user("no-op"),
        user("good-2", **{"$set": {"a": 2}}),
    )
    assert reply["status"] == 1
    failed_alone = send(fresh_server, user("bad-only", **{"$add": {"n": "x"}}))
    assert failed_alone["status"] == 0
    assert "$add" in failed_alone["error"]
    unknown = httpx.post(
        f"{fresh_server.url}/engage",
        data={"data": orjson.dumps({"$token": "not-a-token", "$distinct_id": "stranger", "$set": {"a": 1}}).decode()},
    )
    assert unknown.content == b"0"
    found = profiles(fresh_server, "good-1", "good-2", "bad-add", "no-token", "bad-union", "no-op", "stranger")
    assert without_last_seen(found["good-1"]) == {"a": 1}
    assert without_last_seen(found["good-2"]) == {"a": 2}
    assert [k for k, v in found.items() if v is not None] == ["good-1", "good-2"]


def test_group_profiles(fresh_server: ServerProcess) -> None:
    send(fresh_server, group("company", "acme", **{"$set": {"size": 10, "tier": "gold"}}), path="/groups")
    send(fresh_server, group("company", "acme", **{"$set_once": {"size": 99, "founded": 1999}}), path="/groups")
    send(fresh_server, group("company", "acme", **{"$union": {"regions": ["eu", "us"]}}), path="/groups")
    send(fresh_server, group("company", "acme", **{"$remove": {"regions": "eu"}}), path="/groups")
    send(fresh_server, group("company", "acme", **{"$unset": ["tier"]}), path="/groups")
    send(fresh_server, group("company", "initech", **{"$set": {"size": 3}}), path="/groups")
    send(fresh_server, group("company", "initech", **{"$delete": ""}), path="/groups")
    send(fresh_server, group("team", "acme", **{"$set": {"other": "key"}}), path="/groups")
    numeric_id = httpx.post(
        f"{fresh_server.url}/groups",
        content=orjson.dumps([group("company", 42, **{"$set": {"numeric": True}})]),
        headers={"Content-Type": "application/json"},
    )
    assert numeric_id.content == b"1"
    missing_key = send(fresh_server, {"$token": TOKEN, "$group_id": "x", "$set": {"a": 1}}, path="/groups")
    assert missing_key == {"status": 0, "error": "$group_key, missing or empty"}
    fresh_server.stop()
    engine = DuckDBEngine(fresh_server.data_dir)
    try:
        assert engine.group_profile(PROJECT_ID, "company", "acme") == {"size": 10, "founded": 1999, "regions": ["us"]}
        assert engine.group_profile(PROJECT_ID, "company", "initech") is None
        assert engine.group_profile(PROJECT_ID, "team", "acme") == {"other": "key"}
        assert engine.group_profile(PROJECT_ID, "company", "42") == {"numeric": True}
        assert engine.profile(PROJECT_ID, "acme") is None  # groups are not user profiles
    finally:
        engine.close()
