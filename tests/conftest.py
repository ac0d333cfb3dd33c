from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import httpx._transports.default
import pytest
from xdist import is_xdist_controller

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

_create_ssl_context = httpx.create_ssl_context
_default_ssl_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def _shared_default_ssl_context(
    verify: ssl.SSLContext | str | bool = True, cert: object = None, trust_env: bool = True
) -> ssl.SSLContext:
    """httpx builds a new SSLContext, loading a whole CA bundle (certifi's, or SSL_CERT_FILE's), for every
    Client, so for every `httpx.get(...)`: 23 ms of CPU each, a quarter of the test process's samples in a
    profile of tests/test_lexicon.py, for requests that go over plain-HTTP loopback. With the default
    settings (verify=True, no client certificate) one context per SSL_CERT_FILE/SSL_CERT_DIR is made and
    shared (an SSLContext serves any number of connections); anything else goes to httpx as before."""
    if verify is not True or cert is not None:
        return _create_ssl_context(verify, cert, trust_env)  # type: ignore[arg-type]
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
    context = _default_ssl_contexts.get(key)
    if context is None:
        context = _default_ssl_contexts[key] = _create_ssl_context(True, None, trust_env)
    return context


assert httpx._transports.default.create_ssl_context is _create_ssl_context, "httpx moved create_ssl_context"
httpx._transports.default.create_ssl_context = _shared_default_ssl_context  # type: ignore[assignment]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Load the query kernels (numba's cache, ~0.3 s) before any test. An engine opened in this process
    loads them on a background thread otherwise, which outlives the test that opened it and runs beside
    the next ones; under libfaketime one such load crashed the test process (a segfault in numba's
    registry code on the kernel thread, in the run at 00:05). Not in pytest-xdist's controller, which runs
    no test."""
    if is_xdist_controller(session):
        return
    from mixhouse.engine import kernels

    kernels.warm()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engine", default=None, help="run the engine contract suite on this engine only (default: all)")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the read-mostly tests; tests that need isolation use project ids of their own."""
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server on an empty data dir of its own."""
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def export(
    base: str, *, project_id: int = PROJECT_ID, auth: tuple[str, str] = (SA_USER, SA_SECRET), **params: str
) -> list[dict[str, object]]:
    """Every exported event, parsed from the JSONL body."""
    import orjson

    query = {"project_id": str(project_id), "from_date": "2020-01-01", "to_date": today(), **params}
    response = httpx.get(f"{base}/api/2.0/export", params=query, auth=auth, timeout=60)
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line]
