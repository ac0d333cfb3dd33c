"""GDPR/CCPA API v3 against a real server (docs/gdpr.md): a deletion removes every event and profile of
every id of a merged user from export, engage, segmentation, funnels and retention; it survives a
kill -9 while it runs; it cannot be cancelled once STARTED; retrievals write a file served behind auth;
a request names at most 2,000 ids."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.domain.project import IdMerge, Role
from mixhouse.gdpr.tokens import GdprTokens
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

ANON = "3f2b8c1e-0d4a-4b6e-9c1a-2d3e4f5a6b7c"  # Original ID Merge identifies uuid4 anonymous ids only
TWIN = 4243  # a project that holds only the data that must survive: after a deletion, queries equal its
TWIN_TOKEN, TWIN_SECRET = "TWINTOKEN", "TWINSECRET"
DELETIONS = "/api/app/data-deletions/v3.0"
RETRIEVALS = "/api/app/data-retrievals/v3.0"
DAY = "2024-05-01"
T0 = 1714521600  # 2024-05-01T00:00:00Z
DATES = {"from_date": DAY, "to_date": "2024-05-03"}


def _events(prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(alice's events: anonymous on a device, then identified, then signed in elsewhere; bob's events)."""
    alice = [
        {"event": "Visit", "properties": {"time": T0 + 10, "distinct_id": f"$device:{prefix}dev-a",
                                          "$device_id": f"{prefix}dev-a", "$insert_id": f"{prefix}a1", "secret": "a"}},
        {"event": "Signup", "properties": {"time": T0 + 20, "distinct_id": f"{prefix}alice",
                                           "$device_id": f"{prefix}dev-a", "$user_id": f"{prefix}alice",
                                           "$insert_id": f"{prefix}a2"}},
        {"event": "Signup", "properties": {"time": T0 + 20, "distinct_id": f"{prefix}alice",
                                           "$device_id": f"{prefix}dev-a", "$user_id": f"{prefix}alice",
                                           "$insert_id": f"{prefix}a2"}},  # a duplicate: collapsed in reports
        {"event": "Visit", "properties": {"time": T0 + 86400, "distinct_id": f"$device:{prefix}dev-b",
                                          "$device_id": f"{prefix}dev-b", "$insert_id": f"{prefix}a3"}},
        {"event": "Visit", "properties": {"time": T0 + 86460, "distinct_id": f"{prefix}alice",
                                          "$device_id": f"{prefix}dev-b", "$user_id": f"{prefix}alice",
                                          "$insert_id": f"{prefix}a4"}},
    ]  # fmt: skip
    bob = [
        {"event": "Visit", "properties": {"time": T0 + 30, "distinct_id": f"{prefix}bob", "$insert_id": f"{prefix}b1"}},
        {"event": "Signup", "properties": {"time": T0 + 40, "distinct_id": f"{prefix}bob", "$insert_id": f"{prefix}b2"}},
        {"event": "Visit", "properties": {"time": T0 + 86500, "distinct_id": f"{prefix}bob", "$insert_id": f"{prefix}b3"}},
    ]  # fmt: skip
    return alice, bob


def _import(url: str, events: list[dict[str, Any]], secret: str = SECRET) -> None:
    for event in events:  # one request each: links arrive in event order
        r = httpx.post(f"{url}/import?strict=1", json=[event], auth=(secret, ""), timeout=30)
        assert r.status_code == 200, r.text


def _engage(url: str, token: str, distinct_id: str, props: dict[str, Any]) -> None:
    update = {"$token": token, "$distinct_id": distinct_id, "$set": props, "$ignore_time": True}
    r = httpx.post(f"{url}/engage", data={"data": orjson.dumps(update).decode(), "verbose": "1"}, timeout=30)
    assert r.json() == {"status": 1, "error": None}


def _seed(url: str, prefix: str = "") -> None:
    alice, bob = _events(prefix)
    _import(url, alice + bob)
    _engage(url, TOKEN, f"{prefix}alice", {"$email": "alice@example.com"})
    _engage(url, TOKEN, f"$device:{prefix}dev-b", {"device": "b"})  # Simplified keeps device profiles apart
    _engage(url, TOKEN, f"{prefix}bob", {"$email": "bob@example.com"})
    _import(url, bob, TWIN_SECRET)
    _engage(url, TWIN_TOKEN, f"{prefix}bob", {"$email": "bob@example.com"})


def _data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    Catalog(data_dir).create_project(
        project_id=TWIN, name="twin", token=TWIN_TOKEN, secret=TWIN_SECRET, api_key="TWINKEY", timezone="UTC"
    )
    Catalog(data_dir).create_service_account(username="sa.twin", secret="twin-secret", project_id=TWIN, role=Role.OWNER)
    return data_dir


def gdpr_token(data_dir: Path, project_id: int = PROJECT_ID) -> str:
    """Exactly the documented command."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mixhouse",
            "gdpr-tokens",
            "create",
            "--data-dir",
            str(data_dir),
            "--project",
            str(project_id),
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    payload = orjson.loads(out.stdout)
    assert payload["project_id"] == project_id and payload["expires_at"].endswith("Z")
    return str(payload["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _create(url: str, path: str, token: str, ids: list[str], **extra: str) -> httpx.Response:
    return httpx.post(
        f"{url}{path}/?token={TOKEN}", json={"distinct_ids": ids, **extra}, headers=_bearer(token), timeout=30
    )


def _status(url: str, path: str, token: str, task: str) -> dict[str, Any]:
    r = httpx.get(f"{url}{path}/{task}", params={"token": TOKEN}, headers=_bearer(token), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    results: dict[str, Any] = r.json()["results"]
    return results


def _wait(url: str, path: str, token: str, task: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(url, path, token, task)
        if status["status"] in states:
            return status
        assert time.monotonic() < deadline, f"task {task} stayed {status['status']}"
        time.sleep(0.1)


def _query(url: str, name: str, project: int, **params: str) -> Any:
    auth = (SA_USER, SA_SECRET) if project == PROJECT_ID else ("sa.twin", "twin-secret")
    r = httpx.get(f"{url}/api/query/{name}", params={"project_id": str(project), **params}, auth=auth, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _reports(url: str, project: int, funnel_id: int) -> dict[str, Any]:
    """What segmentation, funnels, retention and engage say about the project's users."""
    engage = _query(url, "engage", project)
    return {
        "uniques": _query(url, "segmentation", project, event="Visit", type="unique", unit="day", **DATES)["data"],
        "general": _query(url, "segmentation", project, event="Signup", unit="day", **DATES)["data"],
        "by_user": _query(url, "segmentation", project, event="Visit", on='properties["$distinct_id"]', **DATES)[
            "data"
        ],
        "funnel": _query(url, "funnels", project, funnel_id=str(funnel_id), **DATES)["data"],
        "retention": _query(url, "retention", project, born_event="Signup", event="Visit", **DATES),
        "engage": sorted((p["$distinct_id"], p["$properties"].get("$email")) for p in engage["results"]),
    }


def _funnel(url: str, project: int) -> int:
    auth = (SA_USER, SA_SECRET) if project == PROJECT_ID else ("sa.twin", "twin-secret")
    body = {"name": "signup", "steps": [{"event": "Signup"}, {"event": "Visit"}], "length": 7, "length_unit": "day"}
    r = httpx.post(f"{url}/api/app/projects/{project}/funnels", json=body, auth=auth, timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["results"]["funnel_id"])


def _exported_ids(url: str) -> set[str]:
    ids: set[str] = set()
    for e in export(url, from_date=DAY, to_date="2024-05-10"):
        props = e["properties"]
        assert isinstance(props, dict)
        ids.add(str(props["distinct_id"]))
        if "$distinct_id_before_identity" in props:
            ids.add(str(props["$distinct_id_before_identity"]))
    return ids


@pytest.fixture
def gdpr_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env = getattr(request, "param", {})
    server = ServerProcess(_data_dir(tmp_path), env=env).start()
    yield server
    server.stop()


def test_deleting_one_id_of_a_merged_user_deletes_the_whole_cluster(gdpr_server: ServerProcess) -> None:
    url = gdpr_server.url
    _seed(url)
    funnels = {p: _funnel(url, p) for p in (PROJECT_ID, TWIN)}
    before = _reports(url, PROJECT_ID, funnels[PROJECT_ID])
    assert before != _reports(url, TWIN, funnels[TWIN])
    assert {"alice", "$device:dev-a", "$device:dev-b", "bob"} <= _exported_ids(url)
    token = gdpr_token(gdpr_server.data_dir)

    # One id of the cluster (an anonymous device) names the whole person.
    created = _create(url, DELETIONS, token, ["$device:dev-a"], compliance_type="GDPR")
    assert created.status_code == 201, created.text
    task = created.json()["results"]["task_id"]
    assert created.json() == {"status": "ok", "results": {"task_id": task}}
    done = _wait(url, DELETIONS, token, task, {"SUCCESS", "FAILURE"})
    assert done["status"] == "SUCCESS"
    assert done["tracking_id"] == task and done["project_id"] == PROJECT_ID
    assert done["compliance_type"] == "GDPR" and done["distinct_ids"] == ["$device:dev-a"]
    assert done["requesting_user"] == "gdpr-admin"
    assert len(done["date_requested"]) == 19 and done["date_requested"][10] == "T"

    assert _exported_ids(url) == {"bob"}
    # Every report now equals the twin project's, which never held alice.
    assert _reports(url, PROJECT_ID, funnels[PROJECT_ID]) == _reports(url, TWIN, funnels[TWIN])
    for distinct_id in ("alice", "$device:dev-a", "$device:dev-b"):
        engage = _query(url, "engage", PROJECT_ID, distinct_id=distinct_id)
        assert engage["results"] == []

    # A deleted user's later events start a new history: the device links afresh, nothing old comes back.
    later = {"event": "Visit", "properties": {"time": T0 + 2 * 86400, "distinct_id": "alice", "$device_id": "dev-a",
                                              "$user_id": "alice", "$insert_id": "new-1"}}  # fmt: skip
    anonymous = {"event": "Visit", "properties": {"time": T0 + 2 * 86400 + 5, "distinct_id": "$device:dev-a",
                                                  "$device_id": "dev-a", "$insert_id": "new-2"}}  # fmt: skip
    _import(url, [later, anonymous])
    alice_rows = [
        e for e in export(url, from_date=DAY, to_date="2024-05-10") if e["properties"]["distinct_id"] == "alice"
    ]  # type: ignore[index]
    assert sorted(e["properties"]["$insert_id"] for e in alice_rows) == ["new-1", "new-2"]  # type: ignore[index]
    assert _query(url, "engage", PROJECT_ID, distinct_id="alice")["results"] == []


def test_a_deletion_killed_mid_job_resumes_and_is_never_half_done(tmp_path: Path) -> None:
    data_dir = _data_dir(tmp_path)
    server = ServerProcess(data_dir, env={"MIXHOUSE_DELETE_DRILL_PAUSE_SECONDS": "60"}).start()
    try:
        url = server.url
        _seed(url)
        before = _exported_ids(url)
        token = gdpr_token(data_dir)
        task = _create(url, DELETIONS, token, ["alice"]).json()["results"]["task_id"]
        _wait(url, DELETIONS, token, task, {"STARTED"})
        # Inside its transaction now: nothing is gone yet, and it can no longer be cancelled.
        cancel = httpx.delete(f"{url}{DELETIONS}/{task}", params={"token": TOKEN}, headers=_bearer(token))
        assert cancel.status_code == 405
        assert cancel.json() == {"status": "error", "error": "the task is STARTED and can no longer be cancelled"}
        assert _exported_ids(url) == before
        assert _query(url, "engage", PROJECT_ID, distinct_id="alice")["results"] != []
        server.kill()

        server.env = {}
        server.start()
        # The crash rolled the transaction back: all of alice is there until the resumed job commits.
        done = _wait(url, DELETIONS, token, task, {"SUCCESS", "FAILURE"})
        assert done["status"] == "SUCCESS"
        assert _exported_ids(url) == {"bob"}
        assert _query(url, "engage", PROJECT_ID, distinct_id="alice")["results"] == []
        assert _query(url, "engage", PROJECT_ID, distinct_id="$device:dev-b")["results"] == []
    finally:
        server.stop()


@pytest.mark.parametrize("gdpr_server", [{"MIXHOUSE_GDPR_CANCEL_WINDOW_SECONDS": "120"}], indirect=True)
def test_a_deletion_is_cancelled_while_staging_and_changes_nothing(gdpr_server: ServerProcess) -> None:
    url = gdpr_server.url
    _seed(url)
    token = gdpr_token(gdpr_server.data_dir)
    task = _create(url, DELETIONS, token, ["alice"]).json()["results"]["task_id"]
    assert _wait(url, DELETIONS, token, task, {"STAGING"})["status"] == "STAGING"
    for _ in range(2):  # cancelling twice is no error
        r = httpx.delete(f"{url}{DELETIONS}/{task}", params={"token": TOKEN}, headers=_bearer(token))
        assert r.status_code == 204 and r.content == b""
    assert _status(url, DELETIONS, token, task)["status"] == "REVOKED"
    assert "alice" in _exported_ids(url)
    missing = httpx.delete(f"{url}{DELETIONS}/nope", params={"token": TOKEN}, headers=_bearer(token))
    assert missing.status_code == 404
    assert _status(url, DELETIONS, token, "nope")["status"] == "NOT_FOUND"


def test_a_retrieval_writes_every_event_and_profile_served_behind_auth(gdpr_server: ServerProcess) -> None:
    url = gdpr_server.url
    _seed(url)
    token = gdpr_token(gdpr_server.data_dir)
    created = _create(url, RETRIEVALS, token, ["alice"], compliance_type="GDPR")
    assert created.status_code == 201
    task = created.json()["results"]["task_id"]
    done = _wait(url, RETRIEVALS, token, task, {"SUCCESS", "FAILURE"})
    assert done["status"] == "SUCCESS" and done["distinct_ids"] == ["alice"]
    link = done["results"]
    assert link.startswith(f"{url}{RETRIEVALS}/{task}/file?")

    assert httpx.get(link).status_code == 401
    assert httpx.get(link, headers=_bearer("mxg_wrong")).status_code == 401
    other = gdpr_token(gdpr_server.data_dir, TWIN)
    assert httpx.get(link, headers=_bearer(other)).status_code == 403
    r = httpx.get(link, headers=_bearer(token))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = orjson.loads(r.content)
    assert body["tracking_id"] == task and body["distinct_ids"] == ["alice"]
    assert body["identities"] == {"$device:dev-a": "alice", "$device:dev-b": "alice", "alice": "alice"}
    assert sorted(p["$distinct_id"] for p in body["profiles"]) == ["$device:dev-b", "alice"]
    assert [e["properties"]["$insert_id"] for e in body["events"]] == ["a1", "a2", "a2", "a3", "a4"]
    assert {e["properties"]["distinct_id"] for e in body["events"]} == {"alice"}
    assert body["events"][0]["properties"]["$distinct_id_before_identity"] == "$device:dev-a"
    assert body["events"][0]["properties"]["secret"] == "a"

    # A service account may ask too, if it is an owner or admin of the project.
    basic = httpx.get(link, auth=(SA_USER, SA_SECRET))
    assert basic.status_code == 200 and basic.content == r.content
    Catalog(gdpr_server.data_dir).create_service_account(
        username="sa.viewer", secret="viewer-secret", project_id=PROJECT_ID, role=Role.CONSUMER
    )
    refused = httpx.get(link, auth=("sa.viewer", "viewer-secret"))
    assert refused.status_code == 403 and "consumer role may not manage this project" in refused.json()["error"]

    ccpa = _create(url, RETRIEVALS, token, ["alice"], compliance_type="CCPA", disclosure_type="Categories")
    ccpa_done = _wait(url, RETRIEVALS, token, ccpa.json()["results"]["task_id"], {"SUCCESS", "FAILURE"})
    categories = orjson.loads(httpx.get(ccpa_done["results"], headers=_bearer(token)).content)["categories"]
    # CCPA covers the past 12 months: these 2024 events are older than that whenever this runs after May 2025.
    assert categories["profile_properties"] == ["$email", "device"]


def test_requests_are_validated_and_limited_to_2000_ids(gdpr_server: ServerProcess) -> None:
    url = gdpr_server.url
    token = gdpr_token(gdpr_server.data_dir)
    ok = _create(url, DELETIONS, token, [f"u{i}" for i in range(2000)])
    assert ok.status_code == 201
    too_many = _create(url, DELETIONS, token, [f"u{i}" for i in range(2001)])
    assert too_many.status_code == 400
    assert too_many.json() == {"status": "error", "error": "too many distinct_ids: at most 2000 a request, got 2001"}
    assert _create(url, RETRIEVALS, token, [f"u{i}" for i in range(2001)]).status_code == 400
    bad = {
        "compliance_type": (
            {"distinct_ids": ["a"], "compliance_type": "HIPAA"},
            "compliance_type must be GDPR or CCPA, got 'HIPAA'",
        ),
        "empty": ({"distinct_ids": []}, "distinct_ids must be a non-empty list of strings"),
        "missing": ({}, "Missing required parameter: distinct_ids"),
        "number": ({"distinct_ids": ["a", 7]}, "distinct_ids[1] must be a non-empty string"),
        "unknown": ({"distinct_ids": ["a"], "ids": []}, "unknown field(s): ids"),
    }
    for body, message in bad.values():
        r = httpx.post(f"{url}{DELETIONS}?token={TOKEN}", json=body, headers=_bearer(token))
        assert (r.status_code, r.json()) == (400, {"status": "error", "error": message})
    no_auth = httpx.post(f"{url}{DELETIONS}?token={TOKEN}", json={"distinct_ids": ["a"]})
    assert no_auth.status_code == 401 and no_auth.json()["status"] == "error"
    expired = httpx.post(f"{url}{DELETIONS}?token={TOKEN}", json={"distinct_ids": ["a"]}, headers=_bearer("mxg_nope"))
    assert expired.json() == {
        "status": "error",
        "error": "Unable to authenticate request: invalid or expired GDPR OAuth token",
    }
    stale, _ = GdprTokens(Catalog(gdpr_server.data_dir)).create(PROJECT_ID, "old", days=1, now=time.time() - 86_401)
    refused = httpx.post(f"{url}{DELETIONS}?token={TOKEN}", json={"distinct_ids": ["a"]}, headers=_bearer(stale))
    assert refused.status_code == 401 and refused.json() == expired.json()
    wrong_project = httpx.post(
        f"{url}{DELETIONS}?token={TWIN_TOKEN}", json={"distinct_ids": ["a"]}, headers=_bearer(token)
    )
    assert wrong_project.status_code == 403


def test_an_original_id_merge_cluster_goes_with_its_links(tmp_path: Path) -> None:
    """Original ID Merge: an alias names the person; its anonymous id, its user id and its alias go, and the
    anonymous id can then be identified as someone else (its old merge links are gone)."""
    data_dir = tmp_path / "data"
    seed_catalog(data_dir, id_merge=IdMerge.ORIGINAL)
    server = ServerProcess(data_dir).start()
    try:
        url = server.url
        records = [
            {"event": "Visit", "properties": {"time": T0, "distinct_id": ANON, "$insert_id": "o1"}},
            {"event": "$identify", "properties": {"time": T0 + 10, "$identified_id": "carol", "$anon_id": ANON,
                                                  "$insert_id": "o2"}},
            {"event": "$create_alias", "properties": {"time": T0 + 20, "distinct_id": "carol", "alias": "carol@x",
                                                      "$insert_id": "o3"}},
            {"event": "Buy", "properties": {"time": T0 + 30, "distinct_id": "carol@x", "$insert_id": "o4"}},
            {"event": "Visit", "properties": {"time": T0 + 40, "distinct_id": "dave", "$insert_id": "o5"}},
        ]  # fmt: skip
        _import(url, records)
        _engage(url, TOKEN, ANON, {"source": "ad"})  # folded into carol's profile
        assert _query(url, "engage", PROJECT_ID)["total"] == 1
        token = gdpr_token(data_dir)
        task = _create(url, DELETIONS, token, ["carol@x"]).json()["results"]["task_id"]
        assert _wait(url, DELETIONS, token, task, {"SUCCESS", "FAILURE"})["status"] == "SUCCESS"
        assert _exported_ids(url) == {"dave"}
        assert _query(url, "engage", PROJECT_ID)["results"] == []

        again = {"event": "$identify", "properties": {"time": T0 + 100, "$identified_id": "erin", "$anon_id": ANON,
                                                      "$insert_id": "o6"}}  # fmt: skip
        anonymous = {"event": "Visit", "properties": {"time": T0 + 110, "distinct_id": ANON, "$insert_id": "o7"}}
        known = {"event": "Visit", "properties": {"time": T0 + 120, "distinct_id": "erin", "$insert_id": "o8"}}
        _import(url, [again, anonymous, known])
        # the anonymous id was identified as carol once; with that link gone, identifying it as erin merges them.
        resolved = {
            e["properties"]["$insert_id"]: e["properties"]["distinct_id"]  # type: ignore[index]
            for e in export(url, from_date=DAY, to_date="2024-05-10")
        }
        assert set(resolved) == {"o5", "o6", "o7", "o8"}
        assert resolved["o7"] == resolved["o8"] and resolved["o8"] in (ANON, "erin")
    finally:
        server.stop()


def test_engage_pages_begun_before_a_deletion_do_not_list_the_deleted(gdpr_server: ServerProcess) -> None:
    """`/engage` keeps a paged query's id list for its later pages: a deletion drops it."""
    url = gdpr_server.url
    for i in range(30):
        _engage(url, TOKEN, f"p{i:02d}", {"n": i})
    first = _query(url, "engage", PROJECT_ID, page_size="10")
    assert [p["$distinct_id"] for p in first["results"]] == [f"p{i:02d}" for i in range(10)]
    token = gdpr_token(gdpr_server.data_dir)
    task = _create(url, DELETIONS, token, ["p15"]).json()["results"]["task_id"]
    assert _wait(url, DELETIONS, token, task, {"SUCCESS", "FAILURE"})["status"] == "SUCCESS"
    second = _query(url, "engage", PROJECT_ID, page_size="10", page="1", session_id=first["session_id"])
    assert [p["$distinct_id"] for p in second["results"]] == [f"p{i:02d}" for i in (*range(10, 15), *range(16, 21))]


def test_cohort_targeted_flags_forget_a_deleted_member_at_once(gdpr_server: ServerProcess) -> None:
    """Feature flags keep cohort memberships for MIXHOUSE_FLAGS_COHORT_TTL_S (60 s here): a deletion drops them."""
    sa = (SA_USER, SA_SECRET)
    with httpx.Client(base_url=gdpr_server.url, timeout=30) as c:
        for who in ("member", "other"):
            update = {"$token": TOKEN, "$distinct_id": who, "$set": {"plan": "pro"}}
            assert c.post("/engage", json=[update], params={"verbose": "1"}).json()["status"] == 1
        cohort = c.post(f"/api/app/projects/{PROJECT_ID}/cohorts", auth=sa,
                        json={"name": "Pro", "filter": 'user["plan"] == "pro"'}).json()["results"]["id"]  # fmt: skip
        flag = {"name": "Pro feature", "key": "pro_feature", "status": "enabled", "ruleset": {
            "variants": [{"key": "on", "value": True, "is_control": False, "split": 1.0}],
            "rollout": [{"rollout_percentage": 1.0, "cohort_hash": cohort}]}}  # fmt: skip
        assert c.post(f"/api/app/projects/{PROJECT_ID}/feature-flags", json=flag, auth=sa).status_code == 200

        def served(distinct_id: str) -> bool:
            r = c.get(
                "/flags", params={"context": orjson.dumps({"distinct_id": distinct_id}).decode()}, auth=(TOKEN, "")
            )
            assert r.status_code == 200, r.text
            return "pro_feature" in r.json()["flags"]

        assert served("member") and served("other")
        token = gdpr_token(gdpr_server.data_dir)
        task = _create(gdpr_server.url, DELETIONS, token, ["member"]).json()["results"]["task_id"]
        assert _wait(gdpr_server.url, DELETIONS, token, task, {"SUCCESS", "FAILURE"})["status"] == "SUCCESS"
        assert not served("member") and served("other")
