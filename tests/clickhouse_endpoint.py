"""A loopback stand-in for a ClickHouse server's HTTP interface, over one chDB session, for tests.

No ClickHouse server binary can be installed here (Debian's `clickhouse-server` is years too old for the
SQL the engine writes), and chDB is ClickHouse inside one process: two mixhouse processes cannot open one
chDB folder. This endpoint is that one process. It runs every statement it receives on real chDB (the
same ClickHouse SQL engine, the same MergeTree storage, formats, parameters, settings and error codes) and
speaks as much of ClickHouse's HTTP interface (https://clickhouse.com/docs/interfaces/http) as
clickhouse-connect, the engine's HTTP driver, uses:

- `GET/HEAD /ping` answers `Ok.`; `GET /` without a query answers `Ok.` too;
- a request line longer than ClickHouse's `http_max_uri_size` default (1 MiB) is refused with 414;
- the query comes as the `query` URL parameter and/or the request body (the URL part first, as ClickHouse
  joins them: an INSERT's rows follow its statement), or as `multipart/form-data` fields, which
  clickhouse-connect sends when the parameters are too long for a URL;
- `param_<name>` values bind `{name:Type}` placeholders (ClickHouse's text form, unescaped by chDB as by
  the server); every other URL parameter that is not a transport parameter (`database`, `query_id`,
  `session_id`, `default_format`, `wait_end_of_query`, `enable_http_compression`, ...) is a setting, applied
  with `SET` for that request only and reset before the next one (an unknown name is ClickHouse's own
  `UNKNOWN_SETTING` error);
- the output format is the statement's `FORMAT` clause, else `default_format`, else `TabSeparated`, and a
  statement that returns rows carries `X-ClickHouse-Format`; Native, Arrow, ArrowStream, RowBinary, JSON*
  and the rest are chDB's own output;
- request bodies in `Content-Encoding` gzip, deflate, zstd or lz4 are decompressed; with
  `enable_http_compression=1` the answer is compressed in the first of the client's `Accept-Encoding`
  that this endpoint knows (lz4, zstd, gzip, deflate);
- headers `X-ClickHouse-Query-Id`, `X-ClickHouse-Timezone`, `X-ClickHouse-Summary` (rows and bytes read,
  elapsed), `X-ClickHouse-Server-Display-Name`;
- a failure answers ClickHouse's exception text (`Code: 60. DB::Exception: ... (UNKNOWN_TABLE)`) with
  `X-ClickHouse-Exception-Code` and the HTTP status ClickHouse gives that code (400 for a syntax error, 404
  for an unknown table or setting, 408 for TIMEOUT_EXCEEDED, else 500);
- an HTTP `session_id` runs one query at a time: a second request of the same session while one runs is
  refused with `SESSION_IS_LOCKED` (373), as the server does. Settings do not persist in a session here
  (each request carries its own), and temporary tables are not per session: the engine uses neither.

What a real server (or cluster) does that this does not: statements run one at a time (one chDB session,
one lock), where a server runs them concurrently; there is no authentication (any user and password are
accepted); no replication, no ClickHouse Keeper, no `ON CLUSTER` (a single node: `clickhouse_cluster` DDL
fails here as on a server without that cluster), no `Distributed` tables across shards; no progress
headers while a query runs; the `X-ClickHouse-Summary` counts are chDB's read counters. The tests that use
it check what runs through the HTTP driver and what several mixhouse processes sharing one ClickHouse see;
they do not check cluster behaviour.

Run: `python tests/clickhouse_endpoint.py PATH PORT` (stdlib and chdb only; see `ClickHouseEndpoint`)."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TIMEZONE = "UTC"
MAX_URI_SIZE = 1024 * 1024  # http_max_uri_size's default (https://clickhouse.com/docs/operations/settings/settings)
DISPLAY_NAME = "mixhouse-test-clickhouse"

# URL parameters of ClickHouse's HTTP interface that are not settings
# (https://clickhouse.com/docs/interfaces/http#http-parameters and the query-id / session parameters).
TRANSPORT = {
    "query",
    "database",
    "default_format",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "compress",
    "decompress",
    "buffer_size",
    "wait_end_of_query",
    "user",
    "password",
    "quota_key",
    "role",
    "client_protocol_version",
    "enable_http_compression",
    "http_zlib_compression_level",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close",
    "http_native_compression_disable_checksumming_on_decompress",
    "http_response_buffer_size",
}
_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
_INSERT_FORMAT = re.compile(r"^\s*INSERT\b.*?\bFORMAT\s+([A-Za-z0-9_]+)", re.IGNORECASE | re.DOTALL)
_RESULT_SET = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "(")
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z_]+)\)\s*$")
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# exceptionCodeToHTTPStatus in ClickHouse's src/Server/HTTP: names, since chDB reports them with each code.
_STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}
SESSION_IS_LOCKED = 373


class QueryFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Backend:
    """One chDB session, one statement at a time, with per-request settings and database."""

    def __init__(self, path: str) -> None:
        from chdb import session

        self._session = session.Session(path)
        self._lock = threading.Lock()
        self._sessions: set[str] = set()
        self._sessions_lock = threading.Lock()
        rows = self._session.query("SELECT name, value FROM system.settings WHERE changed", "JSONEachRow")
        self._baseline = {
            r["name"]: r["value"] for r in map(json.loads, rows.bytes().splitlines()) if r["name"] != "database"
        }
        self._applied: dict[str, str] = {}
        self._database = "default"
        self.version = self._session.query("SELECT version()", "TabSeparated").bytes().decode().strip()

    def close(self) -> None:
        with self._lock:
            self._session.close()

    def _raw(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> Any:
        try:
            return self._session.query(sql, fmt, params=params) if params else self._session.query(sql, fmt)
        except Exception as exc:
            text = str(exc).strip()
            match = _CODE.search(text)
            raise QueryFailed(int(match.group(1)) if match else 1001, text) from exc

    def _use(self, database: str, settings: dict[str, str]) -> None:
        """Bring the session to this request's database and settings: set what differs from what the
        previous request left, reset what it set and this one does not."""
        for name in [n for n in self._applied if n not in settings]:
            value = self._baseline.get(name)
            self._raw(f"SET {name} = {_quoted(value) if value is not None else 'DEFAULT'}", "TabSeparated")
            del self._applied[name]
        for name, value in settings.items():
            if self._applied.get(name) != value:
                if not _SETTING.match(name):
                    raise QueryFailed(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                self._applied.pop(name, None)
                self._raw(f"SET {name} = {_quoted(value)}", "TabSeparated")
                self._applied[name] = value
        if database != self._database:
            self._raw(f"USE {_identifier(database)}", "TabSeparated")
            self._database = database

    def run(
        self, sql: str, fmt: str, params: dict[str, str], settings: dict[str, str], database: str, session: str | None
    ) -> Any:
        if session:
            with self._sessions_lock:
                if session in self._sessions:
                    raise QueryFailed(
                        SESSION_IS_LOCKED,
                        f"Code: {SESSION_IS_LOCKED}. DB::Exception: Session {session} is locked by a concurrent"
                        " client. (SESSION_IS_LOCKED)",
                    )
                self._sessions.add(session)
        try:
            with self._lock:
                self._use(database, settings)
                return self._raw(sql, fmt, params)
        finally:
            if session:
                with self._sessions_lock:
                    self._sessions.discard(session)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        return _zstd().decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(body))
    raise QueryFailed(
        89,
        f"Code: 89. DB::Exception: Unknown HTTP content encoding: {encoding}. (UNKNOWN_COMPRESSION_METHOD)",
    )


def _zstd() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef]
    return zstd


def _compress(body: bytes, accepted: str) -> tuple[bytes, str | None]:
    for wanted in (e.split(";")[0].strip().lower() for e in accepted.split(",")):
        if wanted == "lz4":
            import lz4.frame

            return bytes(lz4.frame.compress(body)), "lz4"
        if wanted == "zstd":
            return _zstd().compress(body), "zstd"
        if wanted == "gzip":
            return gzip.compress(body, compresslevel=3), "gzip"
        if wanted == "deflate":
            return zlib.compress(body, 3), "deflate"
    return body, None


def _status(code: int, message: str) -> int:
    match = _NAME.search(message)
    return _STATUS_BY_NAME.get(match.group(1), 500) if match else 500


def _form_fields(body: bytes, content_type: str) -> dict[str, str]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = part.get_payload(decode=True).decode()
    return fields


def make_handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for a delayed ACK
        server_version = "ClickHouse"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # quiet; failures are answered, not logged
            pass

        def handle_one_request(self) -> None:
            """As the standard library's, with ClickHouse's URI limit (`http_max_uri_size`, 1 MiB by default)
            instead of 64 KiB: parameters in the URL beyond it are refused with 414, as by the server."""
            self.raw_requestline = self.rfile.readline(MAX_URI_SIZE + 1)
            if len(self.raw_requestline) > MAX_URI_SIZE:
                self.requestline, self.request_version, self.command = "", "", ""
                self.send_error(414, "URI Too Long")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            method()
            self.wfile.flush()

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "Keep-Alive")
            self.send_header("Keep-Alive", "timeout=10")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self._read_chunked()
            else:
                body = self.rfile.read(length) if length else b""
            self._handle(body)

        def _read_chunked(self) -> bytes:
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()

        def _handle(self, body: bytes) -> None:
            url = urlsplit(self.path)
            query_id = str(uuid.uuid4())
            base = {
                "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
                "X-ClickHouse-Timezone": TIMEZONE,
            }
            if url.path.rstrip("/") in ("/ping", "/replicas_status"):
                self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
                return
            if url.path not in ("", "/"):
                self._send(404, b"There is no handle " + url.path.encode() + b"\n", base)
                return
            try:
                args = dict(parse_qsl(url.query, keep_blank_values=True))
                body = _decompress(body, self.headers.get("Content-Encoding", ""))
                content_type = self.headers.get("Content-Type", "")
                if content_type.startswith("multipart/form-data"):
                    args.update(_form_fields(body, content_type))
                    body = b""
                query_id = args.get("query_id") or query_id
                base["X-ClickHouse-Query-Id"] = query_id
                sql = args.get("query", "")
                if body:
                    sql = f"{sql}\n{body.decode()}" if sql else body.decode()
                if not sql.strip():
                    self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
                    return
                params = {k[len("param_") :]: v for k, v in args.items() if k.startswith("param_")}
                settings = {k: v for k, v in args.items() if k not in TRANSPORT and not k.startswith("param_")}
                is_insert = sql.lstrip().upper().startswith("INSERT")
                found = (_INSERT_FORMAT if is_insert else _FORMAT).search(sql if is_insert else sql.rstrip())
                fmt = found.group(1) if found else args.get("default_format", "TabSeparated")
                result = backend.run(
                    sql, fmt, params, settings, args.get("database", "default"), args.get("session_id") or None
                )
                data = b"" if is_insert else result.bytes() or b""
                headers = {**base, "Content-Type": "text/plain; charset=UTF-8"}
                if not is_insert and sql.lstrip().upper().startswith(_RESULT_SET):
                    headers["X-ClickHouse-Format"] = fmt
                    if fmt.startswith(("JSON", "Arrow", "Native", "RowBinary", "Parquet")):
                        headers["Content-Type"] = (
                            "application/json; charset=UTF-8" if fmt.startswith("JSON") else "application/octet-stream"
                        )
                headers["X-ClickHouse-Summary"] = json.dumps(_summary(result, is_insert))
                if args.get("enable_http_compression") == "1" and data:
                    data, encoding = _compress(data, self.headers.get("Accept-Encoding", ""))
                    if encoding:
                        headers["Content-Encoding"] = encoding
                self._send(200, data, headers)
            except QueryFailed as exc:
                text = str(exc)
                if "(version " not in text:
                    text += f" (version {backend.version} (official build))"
                headers = {
                    **base,
                    "X-ClickHouse-Exception-Code": str(exc.code),
                    "Content-Type": "text/plain; charset=UTF-8",
                }
                self._send(_status(exc.code, str(exc)), (text + "\n").encode(), headers)

    return Handler


def _summary(result: Any, insert: bool) -> dict[str, str]:
    try:
        rows, size, elapsed = result.rows_read(), result.bytes_read(), result.elapsed()
    except Exception:
        return {}
    key = "written" if insert else "read"
    return {f"{key}_rows": str(rows), f"{key}_bytes": str(size), "elapsed_ns": str(int(elapsed * 1e9))}


def serve(path: str, port: int) -> None:
    backend = Backend(path)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(backend))
    server.daemon_threads = True

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        backend.close()


class ClickHouseEndpoint:
    """The endpoint in a child process on a free loopback port: `with ClickHouseEndpoint(dir) as ch: ch.url`."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = path.parent / f"clickhouse-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ClickHouseEndpoint:
        import urllib.request

        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, str(self.path), str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the ClickHouse endpoint exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the ClickHouse endpoint did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ClickHouseEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
