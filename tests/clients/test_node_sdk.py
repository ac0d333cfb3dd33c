"""npm `mixpanel` 0.24.0 (Mixpanel's Node SDK), unmodified, against real mixhouse servers (real-clients §8):
token calls and the legacy `key` over plain http (`{host, protocol: "http"}`), the project secret and a
service account over https (`mixhouse serve --ssl-certfile/--ssl-keyfile` with a self-signed certificate
that Node trusts through NODE_EXTRA_CA_CERTS), since the SDK refuses those credentials over plain http."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.clients.support import (
    SA_AUTH,
    TlsServerProcess,
    export_all,
    make_cert,
    profiles,
    run_node,
    start_server,
)
from tests.server import PROJECT_ID, seed_catalog

JAN_1 = 1704067200
RECENT = int(time.time()) - 3600


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("node-sdk")
    cert, key = make_cert(folder)
    seed_catalog(folder / "tls")
    plain = start_server(folder / "plain")
    tls = TlsServerProcess(folder / "tls", cert, key)
    try:
        tls.start()
        got = run_node(
            "node_sdk.js",
            env={
                "MP_HTTP_HOST": f"127.0.0.1:{plain.port}",
                "MP_TLS_HOST": f"127.0.0.1:{tls.port}",
                "NODE_EXTRA_CA_CERTS": str(cert),
                "MP_RECENT_S": str(RECENT),
            },
        )
        plain_events = export_all(plain.url)
        plain_profiles = profiles(plain.url)
        groups = httpx.get(
            f"{plain.url}/api/2.0/engage",
            params={"project_id": str(PROJECT_ID), "data_group_id": "company"},
            auth=SA_AUTH,
        ).json()
        tls_events = httpx.get(
            f"{tls.url}/api/2.0/export",
            params={
                "project_id": str(PROJECT_ID),
                "from_date": "2020-01-01",
                "to_date": datetime.now(UTC).strftime("%Y-%m-%d"),
            },
            auth=SA_AUTH,
            verify=tls.ssl_context,
        )
        assert tls_events.status_code == 200, tls_events.text
        yield {
            "got": got,
            "plain_events": plain_events,
            "plain_profiles": plain_profiles,
            "groups": groups,
            "tls_events": [json.loads(line) for line in tls_events.content.splitlines() if line],
        }
    finally:
        plain.stop()
        tls.stop()


def by_insert_id(events: list[dict[str, Any]]) -> dict[str, tuple[str, str, int]]:
    return {
        e["properties"]["$insert_id"]: (e["event"], e["properties"]["distinct_id"], e["properties"]["time"])
        for e in events
    }


def test_every_call_succeeds_but_the_wrong_key(run: dict[str, Any]) -> None:
    got = run["got"]
    assert got.pop("import.wrong_key").startswith("ERR ")
    assert got == {
        name: "ok"
        for name in (
            "track", "people.set", "people.increment", "people.track_charge", "groups.set", "track_batch",
            "track.verbose", "import.key", "import_batch.key", "import.secret", "import_batch.service_account",
            "track.tls",
        )
    }  # fmt: skip


def test_events_over_http_are_stored(run: dict[str, Any]) -> None:
    stored = by_insert_id(run["plain_events"])
    # /track without a time: the server stamps it; Dates in track_batch and import arrive as milliseconds
    assert stored["n-track"][:2] == ("Signed Up", "n1")
    assert stored["n-verbose"][:2] == ("Verbose", "n1")
    assert {k: v for k, v in stored.items() if k not in ("n-track", "n-verbose")} == {
        "n-batch-a": ("Batch A", "n2", RECENT),
        "n-batch-b": ("Batch B", "n2", RECENT + 1),
        "n-old": ("Old Event", "n1", JAN_1),
        "n-old-batch": ("Old Batch", "n3", JAN_1),
    }
    signed_up = next(e for e in run["plain_events"] if e["properties"]["$insert_id"] == "n-track")
    assert signed_up["properties"]["plan"] == "pro" and signed_up["properties"]["mp_lib"] == "node"
    assert not any(e["event"] == "Refused" for e in run["plain_events"])


def test_profiles_and_groups_over_http_are_stored(run: dict[str, Any]) -> None:
    n1 = run["plain_profiles"]["n1"]
    assert (n1["$email"], n1["plan"], n1["logins"]) == ("n1@example.com", "pro", 2)
    [charge] = n1["$transactions"]
    assert charge["$amount"] == 9.99 and charge["sku"] == "x"
    [group] = run["groups"]["results"]
    assert group["$distinct_id"] == "acme" and group["$properties"]["size"] == 10


def test_secret_and_service_account_over_https_are_stored(run: dict[str, Any]) -> None:
    stored = by_insert_id(run["tls_events"])
    assert stored.pop("n-tls")[:2] == ("Over TLS", "n4")
    assert stored == {
        "n-secret": ("Secret Import", "n4", JAN_1),
        "n-sa-1": ("SA Batch", "n5", JAN_1),
        "n-sa-2": ("SA Batch", "n6", JAN_1),
    }
