"""The server's control socket: a Unix socket in the data folder (`control.sock`, owner-only like the
folder) through which `mixhouse backup --data-dir DIR` asks the server that has DIR open to make the
backup (only that process may open the store while it runs). One JSON object per line each way:
`{"op": "backup", "to": PATH}` -> the manifest, or `{"error": message}`.

Who may connect is who may read the data folder: no other credentials. A folder path too long for a
Unix socket (about 100 bytes) gets no socket; the server logs it, and backups of it need the server
stopped (`mixhouse backup` then copies the files itself)."""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from mixhouse.errors import MixhouseError

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
MAX_REQUEST_BYTES = 64 * 1024
# How often the socket's thread looks for a stop request between connections: closing the socket waits
# for it (socketserver's default, 0.5 s, made every server stop 0.25 s longer on average); a wakeup
# every 50 ms costs nothing measurable.
POLL_SECONDS = 0.05

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handle_request_fn: Handler


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_BYTES)
        try:
            request = orjson.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            reply = self.server.handle_request_fn(request)
        except (ValueError, MixhouseError) as exc:
            reply = {"error": exc.message if isinstance(exc, MixhouseError) else str(exc)}
        except Exception as exc:
            log.exception("control request failed")
            reply = {"error": f"the request failed: {exc}"}
        self.wfile.write(orjson.dumps(reply) + b"\n")


class ControlSocket:
    def __init__(self, data_dir: Path, handler: Handler) -> None:
        self._path = socket_path(data_dir)
        self._server: _Server | None = None
        if len(str(self._path).encode()) > MAX_SOCKET_PATH:
            log.warning("no control socket: the data folder's path is too long for one (%s)", self._path)
            return
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # left by a server that was killed
        self._server = _Server(str(self._path), _Connection)
        self._server.handle_request_fn = handler
        self._path.chmod(0o600)
        threading.Thread(
            target=self._server.serve_forever, args=(POLL_SECONDS,), name="mixhouse-control", daemon=True
        ).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()


def ask(data_dir: Path, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any] | None:
    """The reply of the server that has `data_dir` open, or None when no server answers there."""
    path = socket_path(data_dir)
    if not path.exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return None  # a socket file left by a server that was killed
        conn.sendall(orjson.dumps(request) + b"\n")
        with conn.makefile("rb") as reply:
            line = reply.readline()
    if not line:
        raise MixhouseError("the server closed its control socket without an answer")
    answer: dict[str, Any] = orjson.loads(line)
    return answer
