"""What the real-client tests share: one small data set loaded into a real server, the per-client virtualenvs
(built on first use, cached under tests/clients/.venvs/), a TLS server for clients that refuse plain http,
and runners for the driver scripts (Python in a client's venv, Node in tests/clients/node).

Every driver prints one JSON document on stdout: what the client got back. The tests compare it with the
data below, computed by hand."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

CLIENTS_DIR = Path(__file__).parent
DRIVERS_DIR = CLIENTS_DIR / "drivers"
NODE_DIR = CLIENTS_DIR / "node"
VENVS_DIR = Path(os.environ.get("MIXHOUSE_CLIENT_VENVS", CLIENTS_DIR / ".venvs"))
VENV_BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 120
SA_AUTH = (SA_USER, SA_SECRET)

# -- the data set ------------------------------------------------------------------------------------------
# Two UTC days. Signed Up: u1, u2, u3 on Jan 1; Purchase: u1 and u2 on Jan 2.
JAN_1 = 1704067200  # 2024-01-01T00:00:00Z
HOUR = 3600
FROM_DATE, TO_DATE = "2024-01-01", "2024-01-02"
EVENTS: list[dict[str, Any]] = [
    {"event": "Signed Up", "properties": {"distinct_id": "u1", "time": JAN_1 + 10 * HOUR, "$insert_id": "su-u1", "plan": "pro"}},
    {"event": "Signed Up", "properties": {"distinct_id": "u2", "time": JAN_1 + 11 * HOUR, "$insert_id": "su-u2", "plan": "free"}},
    {"event": "Signed Up", "properties": {"distinct_id": "u3", "time": JAN_1 + 12 * HOUR, "$insert_id": "su-u3", "plan": "pro"}},
    {"event": "Purchase", "properties": {"distinct_id": "u1", "time": JAN_1 + 34 * HOUR, "$insert_id": "pu-u1", "amount": 9.5}},
    {"event": "Purchase", "properties": {"distinct_id": "u2", "time": JAN_1 + 35 * HOUR, "$insert_id": "pu-u2", "amount": 20}},
]  # fmt: skip
# u3 has no $email: `where=properties["$email"]` selects u1 and u2 only.
PROFILES: dict[str, dict[str, Any]] = {
    "u1": {"$email": "u1@example.com", "plan": "pro", "$last_seen": "2024-01-02T10:00:00"},
    "u2": {"$email": "u2@example.com", "plan": "free", "$last_seen": "2024-01-02T11:00:00"},
    "u3": {"plan": "pro", "$last_seen": "2024-01-01T12:00:00"},
}
COHORT = {"name": "Pro users", "description": "plan is pro", "filter": 'user["plan"] == "pro"'}
COHORT_MEMBERS = ["u1", "u3"]
FUNNEL = {"name": "Signup funnel", "steps": [{"event": "Signed Up"}, {"event": "Purchase"}], "length": 7}


@dataclass(frozen=True)
class Seeded:
    """Ids the server gave the saved objects of the data set."""

    cohort_id: int
    funnel_id: int


def load_data_set(base: str) -> Seeded:
    """The data set, through the server's own APIs (what a real project would have gone through)."""
    response = httpx.post(f"{base}/import", json=EVENTS, auth=(SECRET, ""), params={"strict": "1"}, timeout=60)
    assert response.status_code == 200, response.text
    updates = [
        {"$token": TOKEN, "$distinct_id": d, "$ignore_time": True, "$set": props} for d, props in PROFILES.items()
    ]
    response = httpx.post(f"{base}/engage", json=updates, params={"verbose": "1"}, timeout=60)
    assert response.status_code == 200 and response.json()["status"] == 1, response.text
    app = f"{base}/api/app/projects/{PROJECT_ID}"
    cohort = httpx.post(f"{app}/cohorts", json=COHORT, auth=SA_AUTH, timeout=60)
    funnel = httpx.post(f"{app}/funnels", json=FUNNEL, auth=SA_AUTH, timeout=60)
    assert cohort.status_code == 200 and funnel.status_code == 200, (cohort.text, funnel.text)
    return Seeded(cohort_id=int(cohort.json()["results"]["id"]), funnel_id=int(funnel.json()["results"]["funnel_id"]))


def start_server(data_dir: Path) -> ServerProcess:
    seed_catalog(data_dir)
    return ServerProcess(data_dir).start()


def export_all(base: str, **params: str) -> list[dict[str, Any]]:
    """Every stored event, as /api/2.0/export gives it."""
    query = {"project_id": str(PROJECT_ID), "from_date": "2020-01-01", "to_date": time.strftime("%Y-%m-%d"), **params}
    response = httpx.get(f"{base}/api/2.0/export", params=query, auth=SA_AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.content.splitlines() if line]


def profiles(base: str) -> dict[str, dict[str, Any]]:
    """Every stored user profile: distinct id -> properties."""
    out: dict[str, dict[str, Any]] = {}
    response = httpx.post(f"{base}/api/2.0/engage", data={"project_id": str(PROJECT_ID)}, auth=SA_AUTH, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] <= body["page_size"], "more profiles than one page: page through them"
    for row in body["results"]:
        out[row["$distinct_id"]] = row["$properties"]
    return out


# -- TLS ---------------------------------------------------------------------------------------------------


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (Debian's openssl CLI): (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class TlsServerProcess(ServerProcess):
    """`mixhouse serve --ssl-certfile --ssl-keyfile`: the same server over HTTPS."""

    def __init__(self, data_dir: Path, cert: Path, key: Path) -> None:
        super().__init__(data_dir)
        self.cert, self.key = cert, key
        self.ssl_context = ssl.create_default_context(cafile=str(cert))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def serve_args(self) -> list[str]:
        return [*super().serve_args(), "--ssl-certfile", str(self.cert), "--ssl-keyfile", str(self.key)]

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=1, verify=self.ssl_context).status_code == 200


# -- virtualenvs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenvSpec:
    """A client's own virtualenv: exact pins, so clients whose dependencies clash never share one."""

    name: str
    pins: tuple[str, ...]
    no_deps: tuple[str, ...] = ()  # installed after the pins with --no-deps: clients whose own pins no longer run

    @property
    def path(self) -> Path:
        digest = hashlib.sha256("\n".join(self.pins + self.no_deps).encode()).hexdigest()[:10]
        return VENVS_DIR / f"{self.name}-{digest}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def ready(self) -> bool:
        return (self.path / ".ready").exists()


VENVS = {
    "mixpanel-utils": VenvSpec("mixpanel-utils", ("mixpanel-utils==2.2.7",)),
    "mixpanel-headless": VenvSpec("mixpanel-headless", ("mixpanel-headless==0.4.0", "typer<0.29")),
    "tap-mixpanel": VenvSpec("tap-mixpanel", ("tap-mixpanel==1.8.0",)),
    "airbyte-source-mixpanel": VenvSpec("airbyte-source-mixpanel", ("airbyte-source-mixpanel==4.0.2",)),
    "pipelinewise-tap-mixpanel": VenvSpec("pipelinewise-tap-mixpanel", ("pipelinewise-tap-mixpanel==1.2.0",)),
    "mixpanel-jql": VenvSpec("mixpanel-jql", ("mixpanel-jql==0.5.1",)),
    # mixpanel-export pins requests 2.9.1, which no longer imports on Python 3.10+ (collections.MutableMapping):
    # it goes in with --no-deps, next to a current requests.
    "async-clients": VenvSpec("async-clients", ("mixpanel-py-async==0.3.0", "aiomixpanel==1.1.0", "mixpanel==5.4.1")),
    "v2-clients": VenvSpec(
        "v2-clients",
        ("mixpanel-query-py==0.1.9", "mixpanel-api3==0.2.1", "requests==2.32.3"),
        no_deps=("mixpanel-export==0.2.post7",),
    ),
}
# Which test module needs which venv: conftest starts the builds of the selected modules at collection time,
# in parallel, so the slow ones (airbyte: ~1.5 min) overlap with the others and with the Node tests.
MODULE_VENVS = {
    "test_mixpanel_utils.py": "mixpanel-utils",
    "test_headless.py": "mixpanel-headless",
    "test_headless_flags.py": "mixpanel-headless",
    "test_headless_lexicon.py": "mixpanel-headless",
    "test_tap.py": "tap-mixpanel",
    "test_airbyte.py": "airbyte-source-mixpanel",
    "test_pipelinewise_tap.py": "pipelinewise-tap-mixpanel",
    "test_v2_clients.py": "v2-clients",
    "test_async_clients.py": "async-clients",
    "test_mixpanel_jql.py": "mixpanel-jql",
}
_builds: dict[str, threading.Thread] = {}
_errors: dict[str, str] = {}
_builds_lock = threading.Lock()


def _build(spec: VenvSpec) -> None:
    """Create the venv under an exclusive file lock (several pytest processes may want it at once)."""
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    with open(VENVS_DIR / f"{spec.path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if spec.ready:
            return
        started = time.monotonic()
        log = VENVS_DIR / f"{spec.path.name}.log"
        with open(log, "w") as out:
            steps = [
                [sys.executable, "-m", "venv", "--clear", str(spec.path)],
                [str(spec.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *spec.pins],
            ]
            if spec.no_deps:
                pip = [str(spec.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
                steps.append([*pip, *spec.no_deps])
            for step in steps:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=VENV_BUILD_TIMEOUT_S)
                if done.returncode != 0:
                    raise RuntimeError(f"building the {spec.name} venv failed: see {log}")
            out.write(f"built in {time.monotonic() - started:.1f}s\n")
        (spec.path / ".ready").write_text("\n".join(spec.pins + spec.no_deps) + "\n")


def _build_recording(spec: VenvSpec) -> None:
    try:
        _build(spec)
    except Exception as exc:  # reported by venv_python() in the test that needs it
        _errors[spec.name] = f"{type(exc).__name__}: {exc}"


def start_venv_builds(names: set[str]) -> None:
    with _builds_lock:
        for name in sorted(names):
            spec = VENVS[name]
            if name not in _builds and not spec.ready:
                _builds[name] = threading.Thread(target=_build_recording, args=(spec,), daemon=True)
                _builds[name].start()


def venv_python(name: str) -> Path:
    """The python of a client's venv, built now if no earlier build (or collection) started it."""
    spec = VENVS[name]
    start_venv_builds({name})
    with _builds_lock:
        build = _builds.get(name)
    if build is not None:
        build.join(VENV_BUILD_TIMEOUT_S)
    if name in _errors:
        raise RuntimeError(_errors[name])
    assert spec.ready, f"the {name} venv is not ready"
    return spec.python


# -- running drivers ---------------------------------------------------------------------------------------


def run_json(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT_S) -> Any:
    """Run a driver; its stdout (or its last line) is the JSON of what the client got."""
    done = subprocess.run(
        cmd, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"{cmd} printed nothing\nstderr:\n{done.stderr}"
    try:
        return json.loads(done.stdout)  # one (maybe pretty-printed) document
    except json.JSONDecodeError:
        return json.loads(lines[-1])  # log lines before it


def run_node(script: str, *, env: dict[str, str], timeout: float = RUN_TIMEOUT_S) -> Any:
    assert (NODE_DIR / "node_modules").is_dir(), "run scripts/install-test-deps (make test-deps) first"
    return run_json(["node", str(NODE_DIR / script)], env=env, cwd=NODE_DIR, timeout=timeout)
