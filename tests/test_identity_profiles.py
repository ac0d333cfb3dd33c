"""Profiles follow identity as https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-simplified says: in Simplified ID Merge, properties set on a
`$device:` profile are not carried over when the device is linked to a user."""

from __future__ import annotations

import httpx
import orjson

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess


def engage_query(server: ServerProcess, **params: str) -> list[dict[str, object]]:
    response = httpx.post(
        f"{server.url}/api/query/engage",
        params={"project_id": str(PROJECT_ID)},
        data=params,
        auth=(SA_USER, SA_SECRET),
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results


def test_device_profile_is_not_carried_over_to_the_user(fresh_server: ServerProcess) -> None:
    url = fresh_server.url
    device_update = {"$token": TOKEN, "$distinct_id": "$device:D1", "$set": {"anon_prop": 1}}
    assert httpx.post(f"{url}/engage", data={"data": orjson.dumps(device_update).decode()}).text == "1"
    link = {"event": "Signed In", "properties": {"$device_id": "D1", "$user_id": "U1", "time": 1704067200}}
    assert httpx.post(f"{url}/import", json=[link], auth=(SECRET, "")).status_code == 200

    assert engage_query(fresh_server, distinct_id="U1") == []
    everyone = engage_query(fresh_server)
    assert [(p["$distinct_id"], p["$properties"]["anon_prop"]) for p in everyone] == [("$device:D1", 1)]  # type: ignore[index]
