"""Cohort-targeted rollouts on a real server: membership follows the project's saved cohort, ids merged
into a member (Simplified ID Merge) are members, and `MIXHOUSE_FLAGS_COHORT_TTL_S=0` (no caching, the
edge of the setting) sees a profile change on the very next request. Also the readout's z-test numbers."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator

import httpx
import pytest

from mixhouse.flags.readout import two_proportion_z
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

SA = (SA_USER, SA_SECRET)
VARIANTS = [{"key": "on", "value": True, "is_control": False, "split": 1.0}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("flags-cohorts") / "data"
    seed_catalog(data_dir)
    old = os.environ.get("MIXHOUSE_FLAGS_COHORT_TTL_S")
    os.environ["MIXHOUSE_FLAGS_COHORT_TTL_S"] = "0"
    try:
        proc = ServerProcess(data_dir).start()
    finally:
        if old is None:
            del os.environ["MIXHOUSE_FLAGS_COHORT_TTL_S"]
        else:
            os.environ["MIXHOUSE_FLAGS_COHORT_TTL_S"] = old
    yield proc
    proc.stop()


def _set_plan(c: httpx.Client, distinct_id: str, plan: str) -> None:
    update = {"$token": TOKEN, "$distinct_id": distinct_id, "$set": {"plan": plan}}
    assert c.post("/engage", json=[update], params={"verbose": "1"}).json()["status"] == 1


def _served(c: httpx.Client, distinct_id: str) -> bool:
    r = c.get("/flags", params={"context": json.dumps({"distinct_id": distinct_id})}, auth=(TOKEN, ""))
    assert r.status_code == 200, r.text
    return "pro_feature" in r.json()["flags"]


def test_cohort_membership_aliases_and_no_cache(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        _set_plan(c, "member", "pro")
        _set_plan(c, "outsider", "free")
        # "$device:dev-9" is merged into "member" by an event carrying both ids.
        merge = {"event": "Opened", "properties": {"time": 1704067200, "distinct_id": "member", "$insert_id": "m1",
                                                   "$device_id": "dev-9", "$user_id": "member"}}  # fmt: skip
        assert c.post("/import", json=[merge], auth=(SECRET, ""), params={"strict": "1"}).status_code == 200
        cohort = c.post(f"/api/app/projects/{PROJECT_ID}/cohorts", auth=SA,
                        json={"name": "Pro", "filter": 'user["plan"] == "pro"'}).json()["results"]["id"]  # fmt: skip
        flag = {"name": "Pro feature", "key": "pro_feature", "status": "enabled", "ruleset": {
            "variants": VARIANTS, "rollout": [{"rollout_percentage": 1.0, "cohort_hash": cohort}]}}  # fmt: skip
        assert c.post(f"/api/app/projects/{PROJECT_ID}/feature-flags", json=flag, auth=SA).status_code == 200

        assert _served(c, "member") and _served(c, "$device:dev-9")
        assert not _served(c, "outsider") and not _served(c, "$device:unknown") and not _served(c, "nobody")
        _set_plan(c, "outsider", "pro")  # TTL 0: the next request sees it
        assert _served(c, "outsider")

        # A deleted cohort has no members.
        assert c.delete(f"/api/app/projects/{PROJECT_ID}/cohorts/{cohort}", auth=SA).status_code == 200
        assert not _served(c, "member")


def test_two_proportion_z_by_hand() -> None:
    # 30/100 against 20/100: pooled p = 0.25, se = sqrt(0.25 * 0.75 * 0.02), z = 0.1 / se.
    t = two_proportion_z(30, 100, 20, 100)
    assert t.z == pytest.approx(0.1 / math.sqrt(0.25 * 0.75 * 0.02))
    assert t.z == pytest.approx(1.632993, abs=1e-6) and t.p_value == pytest.approx(0.102470, abs=1e-6)
    assert two_proportion_z(0, 10, 0, 10).z is None  # nobody converted: undefined
    assert two_proportion_z(3, 10, 1, 0).p_value is None  # empty control
