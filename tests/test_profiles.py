"""User and group profile updates over /engage and /groups, read back from the stopped server's store.

Each test sends its updates to a server of its own, stops it, and opens the data dir's engine to
read the profiles exactly as the server left them."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from mixhouse.engine.duckdb import DuckDBEngine
from tests.server import PROJECT_ID, TOKEN, ServerProcess

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


def test_set_creates_and_overwrites(fresh_server: ServerProcess) -> None:
    assert send(fresh_server, user("u", **{"$set": {"plan": "free", "seats": 1, "$email": "a@b.c"}})) == {
        "status": 1,
        "error": None,
    }
    send(fresh_server, user("u", **{"$set": {"plan": "pro", "nested": {"k": [1, 2]}}}))
    assert without_last_seen(profiles(fresh_server, "u")["u"]) == {
        "plan": "pro",
        "seats": 1,
        "$email": "a@b.c",
        "nested": {"k": [1, 2]},
    }


def test_set_once_only_sets_missing_keys(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("u", **{"$set_once": {"first_seen": "monday"}}))
    send(fresh_server, user("u", **{"$set_once": {"first_seen": "tuesday", "source": "ads"}}))
    assert without_last_seen(profiles(fresh_server, "u")["u"]) == {"first_seen": "monday", "source": "ads"}


def test_add_increments_from_zero(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("u", **{"$add": {"logins": 1}}))
    send(fresh_server, user("u", **{"$add": {"logins": 2, "balance": -2.5}}))
    send(fresh_server, user("u", **{"$add": {"logins": -1}}))
    assert without_last_seen(profiles(fresh_server, "u")["u"]) == {"logins": 2, "balance": -2.5}


def test_append_adds_one_value_without_dedup(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("u", **{"$append": {"pages": "home"}}))
    send(fresh_server, user("u", **{"$append": {"pages": "home"}}))
    send(fresh_server, user("u", **{"$append": {"pages": ["a", "list"]}}))
    assert without_last_seen(profiles(fresh_server, "u")["u"]) == {"pages": ["home", "home", ["a", "list"]]}


def test_union_keeps_each_value_once(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("u", **{"$union": {"tags": ["a", "b"]}}))
    send(fresh_server, user("u", **{"$union": {"tags": ["b", "c", "c"], "ids": [1, 2]}}))
    assert without_last_seen(profiles(fresh_server, "u")["u"]) == {"tags": ["a", "b", "c"], "ids": [1, 2]}


def test_remove_takes_a_value_out_of_a_list(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("u", **{"$set": {"tags": ["a", "b", "a"], "name": "x"}}))
    send(fresh_server, user("u", **{"$remove": {"tags": "a"}}))
    send(fresh_server, user("u", **{"$remove": {"tags": "zzz", "missing": "a"}}))
    assert without_last_seen(profiles(fresh_server, "u")["u"]) == {"tags": ["b"], "name": "x"}


def test_unset_deletes_properties(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("u", **{"$set": {"a": 1, "b": 2, "c": 3}}))
    send(fresh_server, user("u", **{"$unset": ["a", "c", "never-there"]}))
    assert without_last_seen(profiles(fresh_server, "u")["u"]) == {"b": 2}


def test_delete_removes_the_whole_profile(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("gone", **{"$set": {"a": 1}}), user("kept", **{"$set": {"a": 1}}))
    send(fresh_server, user("gone", **{"$delete": ""}))
    send(fresh_server, user("reborn", **{"$set": {"v": 1}}))
    send(fresh_server, user("reborn", **{"$delete": None}))
    send(fresh_server, user("reborn", **{"$set": {"v": 2}}))
    found = profiles(fresh_server, "gone", "kept", "reborn")
    assert found["gone"] is None
    assert without_last_seen(found["kept"]) == {"a": 1}
    assert without_last_seen(found["reborn"]) == {"v": 2}


def test_unset_and_remove_do_not_create_a_profile(fresh_server: ServerProcess) -> None:
    send(fresh_server, user("ghost", **{"$unset": ["a"]}), user("ghost2", **{"$remove": {"a": 1}}))
    assert profiles(fresh_server, "ghost", "ghost2") == {"ghost": None, "ghost2": None}


def _last_seen(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_ignore_time_leaves_last_seen_alone(fresh_server: ServerProcess) -> None:
    three_days_ago = int(time.time()) - 3 * 86400
    one_day_ago = int(time.time()) - 86400
    send(fresh_server, user("quiet", **{"$set": {"a": 1}, "$time": three_days_ago}))
    send(fresh_server, user("quiet", **{"$set": {"a": 2}, "$time": one_day_ago, "$ignore_time": True}))
    send(fresh_server, user("loud", **{"$set": {"a": 1}, "$time": three_days_ago}))
    send(fresh_server, user("loud", **{"$set": {"a": 2}, "$time": one_day_ago}))
    send(fresh_server, user("never", **{"$set": {"a": 1}, "$ignore_time": True}))
    found = profiles(fresh_server, "quiet", "loud", "never")
    assert found["quiet"] == {"a": 2, "$last_seen": _last_seen(three_days_ago)}
    assert found["loud"] == {"a": 2, "$last_seen": _last_seen(one_day_ago)}
    assert found["never"] == {"a": 1}


def test_a_batch_is_applied_in_order(fresh_server: ServerProcess) -> None:
    batch = [
        user("ordered", **{"$set": {"n": 1, "log": []}}),
        user("ordered", **{"$add": {"n": 10}}),
        user("ordered", **{"$set_once": {"n": 99}}),
        user("ordered", **{"$append": {"log": "first"}}),
        user("ordered", **{"$unset": ["n"]}),
        user("ordered", **{"$add": {"n": 5}}),
        user("ordered", **{"$append": {"log": "second"}}),
        user("ordered", **{"$remove": {"log": "first"}}),
    ]
    assert send(fresh_server, *batch) == {"status": 1, "error": None}
    send(fresh_server, user("ordered", **{"$set": {"n": 7}}))
    send(fresh_server, user("ordered", **{"$add": {"n": 1}}))
    assert without_last_seen(profiles(fresh_server, "ordered")["ordered"]) == {"n": 8, "log": ["second"]}


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
