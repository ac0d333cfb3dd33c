"""A real mixhouse server in a child process, on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mixhouse.catalog import Catalog
from mixhouse.domain.project import IdMerge, Role, TimeMode

TOKEN = "TOKEN123"
SECRET = "SECRET123"
API_KEY = "APIKEY"
PROJECT_ID = 4242
SA_USER = "sa.user"
SA_SECRET = "sa-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_catalog(
    data_dir: Path,
    *,
    project_id: int = PROJECT_ID,
    token: str = TOKEN,
    secret: str = SECRET,
    api_key: str = API_KEY,
    timezone: str = "UTC",
    id_merge: IdMerge = IdMerge.SIMPLIFIED,
    time_mode: TimeMode = TimeMode.UTC,
    sa_user: str | None = SA_USER,
    sa_secret: str = SA_SECRET,
    role: Role = Role.OWNER,
    organization_id: int = 1,
    catalog_url: str | None = None,
) -> None:
    catalog = Catalog(data_dir, url=catalog_url) if catalog_url else Catalog(data_dir)
    catalog.create_project(
        project_id=project_id,
        name=f"p{project_id}",
        token=token,
        secret=secret,
        api_key=api_key,
        timezone=timezone,
        id_merge=id_merge,
        time_mode=time_mode,
        organization_id=organization_id,
    )
    if sa_user:
        catalog.create_service_account(username=sa_user, secret=sa_secret, project_id=project_id, role=role)
    if catalog_url:
        catalog.close()


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        source_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = env or {}  # extra environment of the server process (settings under test)
        self.port = port or free_port()
        self.source_dir = source_dir  # another checkout's mixhouse (benchmarks against an older revision)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)]

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        if self.source_dir is not None:
            env["PYTHONPATH"] = str(self.source_dir)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mixhouse", "serve", *self.serve_args()],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.source_dir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if self.healthy():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def import_events(url: str, events: list[dict[str, object]], batch: int) -> None:
    """POST `events` to /import (strict) in batches of `batch`, each acknowledged with 200."""
    for i in range(0, len(events), batch):
        r = httpx.post(
            f"{url}/import", params={"strict": "1"}, json=events[i : i + batch], auth=(SECRET, ""), timeout=60
        )
        assert r.status_code == 200, r.text
