"""The client's retries against a real loopback HTTP server that misbehaves on purpose, in front of a real
mixhouse: 429 with Retry-After, 503, connections dropped before the reply and cut mid-body. The retries
happen, their spacing is right, nothing is retried that must not be, and no event is counted twice."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from mixhouse_client import (
    AuthenticationFailed,
    BadRequest,
    Client,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    ServerError,
    ServiceAccount,
    TransportError,
)
from mixhouse_client._retry import retry_after_seconds

from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, free_port

T0 = int(datetime(2024, 4, 1, tzinfo=UTC).timestamp())
FAST = RetryPolicy(max_attempts=6, backoff_base=0.05, backoff_cap=0.2)


@dataclass
class Flaky:
    """A proxy to `upstream` that answers from a script, one action per request, then forwards."""

    upstream: str
    script: list[tuple[Any, ...]] = field(default_factory=list)
    seen: list[tuple[float, str]] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> ThreadingHTTPServer:
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                flaky.seen.append((time.monotonic(), self.path.split("?")[0]))
                action = flaky.script.pop(0) if flaky.script else ("forward",)
                if action[0] == "status":
                    payload = b'{"error": "try later"}'
                    self.send_response(action[1])
                    for key, value in (action[2] if len(action) > 2 else {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                headers["Accept-Encoding"] = "identity"
                reply = httpx.request(
                    self.command, flaky.upstream + self.path, content=body, headers=headers, timeout=60
                )
                if action[0] == "drop":  # the server did the work; the answer never arrives
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                content = reply.content
                self.send_response(reply.status_code)
                self.send_header("Content-Type", reply.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if action[0] == "cut":  # half the body, then the connection goes
                    self.wfile.write(content[: len(content) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(content)

            do_GET = do_POST = handle_one

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def flaky(server: ServerProcess) -> Iterator[Flaky]:
    proxy = Flaky(server.url)
    http_server = proxy.serve()
    yield proxy
    http_server.shutdown()
    http_server.server_close()


def client_for(url: str, policy: RetryPolicy = FAST, secret: str = SA_SECRET) -> Client:
    return Client(base_url=url, credentials=ServiceAccount(SA_USER, secret, PROJECT_ID), retry=policy)


def events(tag: str, n: int) -> list[dict[str, Any]]:
    return [{"event": tag, "properties": {"distinct_id": f"{tag}-{i}", "time": T0 + i}} for i in range(n)]


def test_import_survives_429_503_and_a_lost_answer_without_double_counting(server: ServerProcess, flaky: Flaky) -> None:
    flaky.script = [("status", 429, {"Retry-After": "1"}), ("status", 503), ("drop",), ("forward",)]
    with client_for(flaky.url) as c:
        result = c.import_events(events("Retried", 50))
        assert result.ok and result.accepted == 50
        times = [t for t, _ in flaky.seen]
        assert len(times) == 4
        assert times[1] - times[0] >= 1.0  # Retry-After honoured
        assert times[2] - times[1] <= FAST.backoff_base * 2 + 0.5  # full jitter, capped at base * 2**1
        seg = c.segmentation("Retried", "2024-04-01", "2024-04-01")
    stored = export(server.url, from_date="2024-04-01", to_date="2024-04-01", event='["Retried"]')
    assert len(stored) == 100  # the dropped attempt landed too, as Mixpanel would store it ...
    assert len({e["properties"]["$insert_id"] for e in stored}) == 50  # ... with the same $insert_ids
    assert sum(seg["data"]["values"]["Retried"].values()) == 50  # so every report counts each event once


@pytest.mark.parametrize(("status", "error"), [(400, BadRequest), (401, AuthenticationFailed), (403, PermissionDenied)])
def test_client_errors_are_never_retried(flaky: Flaky, status: int, error: type[Exception]) -> None:
    flaky.script = [("status", status)]
    with client_for(flaky.url) as c, pytest.raises(error) as raised:
        c.segmentation("X", "2024-04-01", "2024-04-01")
    assert len(flaky.seen) == 1
    assert raised.value.body == {"error": "try later"}  # type: ignore[attr-defined]


def test_retries_stop_at_max_attempts_and_raise_with_the_body(flaky: Flaky) -> None:
    flaky.script = [("status", 503)] * 10
    with client_for(flaky.url, RetryPolicy(max_attempts=3, backoff_base=0.01)) as c, pytest.raises(ServerError) as e:
        c.segmentation("X", "2024-04-01", "2024-04-01")
    assert len(flaky.seen) == 3 and e.value.attempts == 3 and e.value.message == "try later"


def test_a_retry_after_beyond_the_cap_is_not_waited_out(flaky: Flaky) -> None:
    flaky.script = [("status", 429, {"Retry-After": "3600"})]
    started = time.monotonic()
    with client_for(flaky.url) as c, pytest.raises(RateLimited):
        c.segmentation("X", "2024-04-01", "2024-04-01")
    assert time.monotonic() - started < 5 and len(flaky.seen) == 1


def test_the_retry_budget_limits_retries_across_calls(flaky: Flaky) -> None:
    flaky.script = [("status", 503)] * 100
    policy = RetryPolicy(max_attempts=10, backoff_base=0.001, budget_minimum=3, budget_ratio=0.1)
    with client_for(flaky.url, policy) as c:
        for _ in range(3):
            with pytest.raises(ServerError):
                c.segmentation("X", "2024-04-01", "2024-04-01")
    assert len(flaky.seen) == 3 + 3  # three first attempts, then only the three retries the budget held


def test_a_refused_connection_is_retried_then_reported() -> None:
    port = free_port()  # nothing listens there
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01)
    with client_for(f"http://127.0.0.1:{port}", policy) as c, pytest.raises(TransportError) as e:
        c.segmentation("X", "2024-04-01", "2024-04-01")
    assert e.value.attempts == 3


def test_an_export_cut_mid_stream_resumes_without_losing_or_repeating_lines(
    server: ServerProcess, flaky: Flaky
) -> None:
    with client_for(server.url) as direct:
        direct.import_events(events("Streamed", 500))
    flaky.script = [("cut",), ("status", 503), ("forward",)]
    with client_for(flaky.url) as c:
        got = list(c.export("2024-04-01", "2024-04-01", event="Streamed"))
    assert len(flaky.seen) == 3
    assert got == export(server.url, from_date="2024-04-01", to_date="2024-04-01", event='["Streamed"]')
    assert len(got) == 500


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    import random

    policy = RetryPolicy(backoff_base=0.5, backoff_cap=4.0)
    rng = random.Random(7)
    for retry in range(8):
        ceiling = min(4.0, 0.5 * 2**retry)
        draws = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # spread over the whole range, not a fixed delay


def test_a_create_whose_answer_is_lost_is_not_sent_again(server: ServerProcess, flaky: Flaky) -> None:
    """Creating an annotation twice makes two: after a lost answer the client raises instead of retrying;
    after an error status (the server did nothing) or a refused connection it retries."""
    with client_for(server.url) as direct:
        before = len(direct.annotations.list())
    flaky.script = [("drop",)]
    with client_for(flaky.url) as c, pytest.raises(TransportError, match="not sent again") as lost:
        c.annotations.create("2024-04-01", "made once")
    assert lost.value.attempts == 1 and len(flaky.seen) == 1
    with client_for(server.url) as direct:
        made = [a for a in direct.annotations.list() if a["description"] == "made once"]
        assert len(made) == 1 and len(direct.annotations.list()) == before + 1  # the server did it, once

    flaky.seen.clear()
    flaky.script = [("status", 503), ("status", 429, {"Retry-After": "0"}), ("forward",)]
    with client_for(flaky.url) as c:
        retried = c.annotations.create("2024-04-02", "after two refusals")
    assert len(flaky.seen) == 3 and retried["description"] == "after two refusals"
    with client_for(server.url) as direct:
        assert [a["description"] for a in direct.annotations.list()].count("after two refusals") == 1

    port = free_port()  # nothing listens there: the request never left, so it is sent again
    nowhere = client_for(f"http://127.0.0.1:{port}", RetryPolicy(max_attempts=3, backoff_base=0.01))
    with nowhere as c, pytest.raises(TransportError) as refused:
        c.annotations.create("2024-04-03", "never sent")
    assert refused.value.attempts == 3
    # reads and idempotent writes are still retried after a lost answer
    flaky.seen.clear()
    flaky.script = [("drop",)]
    with client_for(flaky.url) as c:
        assert c.legacy_annotations.update(retried["id"], description="renamed")["description"] == "renamed"
    assert len(flaky.seen) == 2
