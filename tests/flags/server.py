"""A mixhouse server over HTTPS (PyPI mixpanel's flag providers only speak https://{api_host}) holding
the flags of fixtures.py, their cohort and its users."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.clients.support import TlsServerProcess, make_cert
from tests.flags.fixtures import COHORT, PROFILED, flag_definitions
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

SA_AUTH = (SA_USER, SA_SECRET)


@dataclass
class FlagServer:
    server: ServerProcess
    cert: Path | None  # None: plain http
    cohort_id: int

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def client(self) -> httpx.Client:
        verify = self.server.ssl_context if isinstance(self.server, TlsServerProcess) else True
        return httpx.Client(base_url=self.url, verify=verify, timeout=30)


def load_profiles_and_cohort(client: httpx.Client) -> int:
    updates = [
        {"$token": TOKEN, "$distinct_id": f"u{i}", "$ignore_time": True, "$set": {"plan": "pro" if i % 3 == 0 else "free"}}
        for i in range(PROFILED)
    ]  # fmt: skip
    for start in range(0, len(updates), 50):
        r = client.post("/engage", json=updates[start : start + 50], params={"verbose": "1"})
        assert r.status_code == 200 and r.json()["status"] == 1, r.text
    r = client.post(f"/api/app/projects/{PROJECT_ID}/cohorts", json=COHORT, auth=SA_AUTH)
    assert r.status_code == 200, r.text
    return int(r.json()["results"]["id"])


@contextmanager
def flag_server(tmp: Path, *, tls: bool = True) -> Iterator[FlagServer]:
    data_dir = tmp / "data"
    seed_catalog(data_dir)
    cert: Path | None = None
    if tls:
        cert, key = make_cert(tmp)
        server: ServerProcess = TlsServerProcess(data_dir, cert, key).start()
    else:
        server = ServerProcess(data_dir).start()
    try:
        fs = FlagServer(server, cert, 0)
        with fs.client() as client:
            fs.cohort_id = load_profiles_and_cohort(client)
            for flag in flag_definitions(fs.cohort_id):
                r = client.post(f"/api/app/projects/{PROJECT_ID}/feature-flags", json=flag, auth=(SECRET, ""))
                assert r.status_code == 200, r.text
        yield fs
    finally:
        server.stop()


@contextmanager
def trusting(cert: Path | None) -> Iterator[None]:
    """Trust the server's certificate in the clients the SDK builds (read when a client is created, and by
    requests on every call)."""
    assert cert is not None
    names = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")  # httpx (flag providers), requests (the Consumer)
    old = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, str(cert)))
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def definitions(fs: FlagServer) -> Any:
    with fs.client() as client:
        r = client.get("/flags/definitions", params={"token": TOKEN}, auth=(TOKEN, ""))
        assert r.status_code == 200, r.text
        return orjson.loads(r.content)
