"""JQL scripts that try to escape or exhaust the server: each refused or stopped with a 400 (or a 429 when
every worker is busy) while other requests keep being served. The limits are set low on this server so
that every edge is reached in seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog
from tests.test_query_engage import import_events

AUTH = (SA_USER, SA_SECRET)
TIMEOUT_SECONDS = 3
MEMORY_MB = 64
RANGE = 'from_date: "2024-01-01", to_date: "2024-01-01"'
COUNT = f"function main() {{ return Events({{{RANGE}}}).reduce(mixpanel.reducer.count()); }}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("jql-safety") / "data"
    seed_catalog(data_dir)
    env = {
        "MIXHOUSE_JQL_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "MIXHOUSE_JQL_MAX_MEMORY_MB": str(MEMORY_MB),
        "MIXHOUSE_JQL_WORKERS": "2",
        "MIXHOUSE_JQL_QUEUE_SECONDS": "1",
        "MIXHOUSE_JQL_MAX_OUTPUT_MB": "1",
        "MIXHOUSE_JQL_RESOLVE_IDENTITY": "0",
    }
    proc = ServerProcess(data_dir, env=env).start()
    import_events(
        proc.url,
        [
            {"event": "e", "properties": {"distinct_id": f"u{i}", "time": 1704067200 + i, "$insert_id": f"i{i}"}}
            for i in range(5)
        ],
    )
    yield proc
    proc.stop()


def post(server: ServerProcess, script: str) -> httpx.Response:
    data = {"project_id": str(PROJECT_ID), "script": script}
    return httpx.post(f"{server.url}/api/query/jql", data=data, auth=AUTH, timeout=60)


def error_of(server: ServerProcess, script: str) -> str:
    response = post(server, script)
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]
    return message


def served_meanwhile(server: ServerProcess, script: str) -> tuple[httpx.Response, list[float]]:
    """Run `script` in the background; while it runs, other requests (a segmentation query and another
    JQL script) are answered. Returns the script's response and the other requests' latencies."""
    result: dict[str, Any] = {}

    def background() -> None:
        result["response"] = post(server, script)

    thread = threading.Thread(target=background)
    thread.start()
    time.sleep(0.5)
    latencies = []
    for _ in range(3):
        started = time.monotonic()
        seg = httpx.get(
            f"{server.url}/api/query/segmentation",
            params={"project_id": str(PROJECT_ID), "event": "e", "from_date": "2024-01-01", "to_date": "2024-01-01"},
            auth=AUTH,
            timeout=60,
        )
        assert seg.status_code == 200, seg.text
        assert post(server, COUNT).json() == [5]
        latencies.append(time.monotonic() - started)
    thread.join(timeout=60)
    return result["response"], latencies


@pytest.mark.parametrize(
    "script",
    [
        "function main() { while (true) {} }",
        f"function main() {{ return Events({{{RANGE}}}).map(function(e) {{ for (;;) {{}} }}); }}",
        f"function main() {{ return Events({{{RANGE}}}).reduce(function(a, items) {{ while (1) {{ a.push(1); a.pop(); }} }}); }}",
    ],
)
def test_endless_loops_stop_at_the_time_limit_while_others_are_served(server: ServerProcess, script: str) -> None:
    started = time.monotonic()
    response, latencies = served_meanwhile(server, script)
    elapsed = time.monotonic() - started
    assert response.status_code == 400, response.text
    assert f"time limit of {TIMEOUT_SECONDS} s" in response.json()["error"]
    assert TIMEOUT_SECONDS - 0.5 <= elapsed < TIMEOUT_SECONDS + 10
    assert max(latencies) < TIMEOUT_SECONDS  # nobody waited for the runaway script


@pytest.mark.parametrize(
    "script",
    [
        "function main() { var a = []; while (true) { a.push(new Array(100000).fill(1.5)); } }",
        "function main() { var s = 'x'; while (true) { s = s + s; } }",
        "function main() { var o = {}; for (var i = 0; ; i++) { o['k' + i] = {i: i, s: 'v' + i}; } }",
    ],
)
def test_unbounded_allocation_is_stopped(server: ServerProcess, script: str) -> None:
    response, latencies = served_meanwhile(server, script)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    # At the heap limit, or first at V8's own maximum string length (a RangeError), or at the time limit
    # for a heap that grows slower than the clock runs: stopped all the same.
    stopped = (f"memory limit of {MEMORY_MB} MB", "Invalid string length", f"time limit of {TIMEOUT_SECONDS} s")
    assert any(s in error for s in stopped), error
    assert max(latencies) < TIMEOUT_SECONDS


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        ("function main() { return require('fs'); }", "ReferenceError: require is not defined"),
        ("function main() { return fetch('http://127.0.0.1/'); }", "ReferenceError: fetch is not defined"),
        ("function main() { return new XMLHttpRequest(); }", "ReferenceError: XMLHttpRequest is not defined"),
        ("function main() { return process.env; }", "ReferenceError: process is not defined"),
        ("function main() { return new Uint8Array(1e9); }", "ReferenceError: Uint8Array is not defined"),
        ("function main() { return new ArrayBuffer(1e9); }", "ReferenceError: ArrayBuffer is not defined"),
        ("function main() { return WebAssembly.Memory; }", "ReferenceError: WebAssembly is not defined"),
        ("function main() { return eval('require')('fs'); }", "ReferenceError: require is not defined"),
        ("function main() { return Function('return process')(); }", "ReferenceError: process is not defined"),
        ("function main() { setTimeout(function() {}, 1); }", "TypeError: setTimeout is not a function"),
        ("import fs from 'fs';\nfunction main() {}", "SyntaxError: Cannot use import statement outside a module"),
    ],
)
def test_host_access_is_refused(server: ServerProcess, script: str, fragment: str) -> None:
    assert fragment in error_of(server, script)


def test_dynamic_import_and_eval_find_nothing(server: ServerProcess) -> None:
    script = f"""var loaded = "pending";
    import("fs").then(function() {{ loaded = "loaded"; }}, function(e) {{ loaded = "refused: " + e.message; }});
    function main() {{
      var g = eval("this");
      var names = Object.getOwnPropertyNames(g).filter(function(n) {{
        return g[n] !== undefined &&
          ["require", "process", "fetch", "XMLHttpRequest", "ArrayBuffer", "WebAssembly", "setTimeout"].indexOf(n) >= 0;
      }});
      return Events({{{RANGE}}}).reduce(mixpanel.reducer.count())
        .map(function(n) {{ return [n, loaded, names, typeof _, _.VERSION]; }});
    }}"""
    response = post(server, script)
    assert response.status_code == 200, response.text
    assert response.json() == [[5, "refused: Not supported", [], "function", "1.13.8"]]


def test_busy_workers_give_a_429_after_the_queue_wait(server: ServerProcess) -> None:
    loop = "function main() { while (true) {} }"
    threads = [threading.Thread(target=post, args=(server, loop)) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    response = post(server, COUNT)
    assert response.status_code == 429, response.text
    assert "scripts are running" in response.json()["error"]
    for t in threads:
        t.join(timeout=60)
    assert post(server, COUNT).json() == [5]  # the workers came back


def test_output_limit(server: ServerProcess) -> None:
    big = (
        f"function main() {{ return Events({{{RANGE}}}).map(function(e) {{ return new Array(300000).join('x'); }}); }}"
    )
    assert "output limit" in error_of(server, big)
    small = (
        f"function main() {{ return Events({{{RANGE}}}).map(function(e) {{ return new Array(100000).join('x'); }}); }}"
    )
    assert post(server, small).status_code == 200  # 5 x 100 KB: under 1 MB


def test_ids_as_ingested_when_identity_resolution_is_off(server: ServerProcess) -> None:
    """MIXHOUSE_JQL_RESOLVE_IDENTITY=0: a device merged into a user stays a group of its own."""
    import_events(
        server.url,
        [
            {"event": "v", "properties": {"distinct_id": "$device:dx", "$device_id": "dx", "time": 1704153600, "$insert_id": "m1"}},
            {"event": "v", "properties": {"distinct_id": "ux", "$device_id": "dx", "$user_id": "ux", "time": 1704153601, "$insert_id": "m2"}},
        ],
    )  # fmt: skip
    script = 'function main() { return Events({from_date: "2024-01-02", to_date: "2024-01-02"}).groupByUser(mixpanel.reducer.count()); }'
    assert post(server, script).json() == [{"key": ["$device:dx"], "value": 1}, {"key": ["ux"], "value": 1}]


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same 64 MB heap, with the default time limit: a busy machine must not turn a memory test into a
    timeout."""
    data_dir = tmp_path_factory.mktemp("jql-memory") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"MIXHOUSE_JQL_MAX_MEMORY_MB": str(MEMORY_MB)}).start()
    yield proc
    proc.stop()


USERS = 120_000


def test_group_by_user_heap_is_bounded_by_one_users_state(patient_server: ServerProcess) -> None:
    """120,000 users, each with a 4 KB state: 480 MB if every user's group were held at once, more than
    seven times the 64 MB heap. groupByUser reads the events user by user, passes each finished user on at
    once, and the answer leaves the heap as it is made, so the heap holds a few users' states whatever the
    user count; a reduce over all events streams the same way."""
    server = patient_server
    base = 1704240000  # 2024-01-03
    import_events(
        server.url,
        [
            {"event": "w", "properties": {"distinct_id": f"w{i}", "time": base + i % 3600, "$insert_id": f"w{i}", "n": i}}
            for i in range(USERS)
        ],
    )  # fmt: skip
    day = 'Events({from_date: "2024-01-03", to_date: "2024-01-03"})'
    state = "function(state, events) { return (state || new Array(4096).join('x')).slice(0, 4095) + events.length; }"
    big_states = (
        f"function main() {{ return {day}.groupByUser({state})"
        ".map(function(g) { return g.value.length; }).reduce(mixpanel.reducer.sum()); }"
    )
    assert post(server, big_states).json() == [USERS * 4096]
    # every user's state in the answer: 480 MB of states pass through the 64 MB heap on their way out
    shown = (
        f"function main() {{ return {day}.groupByUser({state}).map(function(g) {{ return g.value.slice(0, 2); }}); }}"
    )
    assert post(server, shown).json() == ["xx"] * USERS
    total = (
        f"function main() {{ return {day}.reduce([mixpanel.reducer.count(), mixpanel.reducer.sum('properties.n')]); }}"
    )
    assert post(server, total).json() == [[USERS, sum(range(USERS))]]


def test_one_users_state_past_the_heap_is_a_400(server: ServerProcess) -> None:
    """A state that alone outgrows the heap cannot be streamed away: the script stops with the memory
    limit's message in the Query API envelope, and the server goes on serving."""
    script = (
        f"function main() {{ return Events({{{RANGE}}}).groupByUser(function(state, events) {{"
        " var s = state || []; for (var i = 0; i < 4000000; i++) s.push(i + 0.5); return s; }); }"
    )
    response = post(server, script)
    assert response.status_code == 400, response.text
    body = response.json()
    assert "request" in body
    assert body["error"] == f"the script used more than the JQL memory limit of {MEMORY_MB} MB"
    assert post(server, COUNT).json() == [5]
