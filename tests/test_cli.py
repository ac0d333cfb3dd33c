"""The `mixhouse` command: `projects create` and `service-accounts create` print JSON and work on a
fresh data dir and under a running server (which sees them at once); `serve` on an empty data dir
creates and prints a default project and service account that work."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import today
from tests.server import ServerProcess, free_port

# The tests marked `clock` read it (events tracked now, exported up to today): `make test` runs them again
# at other hours (scripts/at-time). The others (usage errors, refusals, listings) read no date.
CLOCK = pytest.mark.clock

MIXHOUSE = Path(sys.executable).parent / "mixhouse"  # the console script `pip install -e .` made


def mixhouse(*args: str, ok: bool = True) -> Any:
    """Run the command; its stdout parsed as JSON."""
    assert MIXHOUSE.exists(), f"console script missing: {MIXHOUSE}"
    result = subprocess.run([str(MIXHOUSE), *args], capture_output=True, text=True, timeout=60)
    assert (result.returncode == 0) is ok, (result.returncode, result.stdout, result.stderr)
    return orjson.loads(result.stdout)


def create_project(data_dir: Path, project_id: int, token: str, secret: str, *extra: str, ok: bool = True) -> Any:
    return mixhouse(
        "projects",
        "create",
        "--data-dir",
        str(data_dir),
        "--id",
        str(project_id),
        "--name",
        "demo",
        "--token",
        token,
        "--secret",
        secret,
        "--timezone",
        "UTC",
        *extra,
        ok=ok,
    )


def create_service_account(
    data_dir: Path, username: str, secret: str, project_id: int, role: str = "owner", ok: bool = True
) -> Any:
    return mixhouse(
        "service-accounts",
        "create",
        "--data-dir",
        str(data_dir),
        "--username",
        username,
        "--secret",
        secret,
        "--project",
        str(project_id),
        "--role",
        role,
        ok=ok,
    )


def export_rows(base: str, auth: tuple[str, str], **params: str) -> list[dict[str, Any]]:
    query = {"from_date": "2024-01-01", "to_date": today(), **params}
    response = httpx.get(f"{base}/api/2.0/export", params=query, auth=auth)
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line]


def track(base: str, token: str, name: str) -> bytes:
    event = {"event": name, "properties": {"token": token, "distinct_id": "cli-user"}}
    return httpx.post(f"{base}/track", data={"data": orjson.dumps(event).decode()}).content


@CLOCK
def test_create_on_a_fresh_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    project = create_project(data_dir, 4242, "TOKEN123", "SECRET123")
    assert project["id"] == 4242
    assert project["name"] == "demo"
    assert project["token"] == "TOKEN123"
    assert project["api_secret"] == "SECRET123"
    assert project["timezone"] == "UTC"
    account = create_service_account(data_dir, "sa.user", "sa-secret", 4242)
    assert account == {"username": "sa.user", "secret": "sa-secret", "projects": {"4242": "owner"}}
    listed = mixhouse("projects", "list", "--data-dir", str(data_dir))
    assert [p["id"] for p in listed] == [4242]

    server = ServerProcess(data_dir).start()
    try:
        event = {"event": "cli-import", "properties": {"distinct_id": "u", "time": 1704067200}}
        imported = httpx.post(
            f"{server.url}/import",
            params={"project_id": "4242"},
            json=[event],
            auth=("sa.user", "sa-secret"),
            timeout=60,  # the first request of a fresh server (under faketime on a busy machine, past httpx's 5 s)
        )
        assert imported.json()["num_records_imported"] == 1
        assert track(server.url, "TOKEN123", "cli-track") == b"1"
        rows = export_rows(server.url, ("sa.user", "sa-secret"), project_id="4242")
        assert sorted(r["event"] for r in rows) == ["cli-import", "cli-track"]
        assert len(export_rows(server.url, ("SECRET123", ""))) == 2
    finally:
        server.stop()


@CLOCK
def test_create_while_the_server_runs(fresh_server: ServerProcess) -> None:
    base, data_dir = fresh_server.url, fresh_server.data_dir
    assert track(base, "TOKEN-NEW", "before") == b"0"  # not a token yet
    create_project(data_dir, 7373, "TOKEN-NEW", "SECRET-NEW")
    create_service_account(data_dir, "sa.new", "new-secret", 7373, role="admin")
    # No restart: the running server sees the new project and account on the next request.
    assert track(base, "TOKEN-NEW", "after") == b"1"
    event = {"event": "imported", "properties": {"distinct_id": "u", "time": 1704067200}}
    imported = httpx.post(f"{base}/import", params={"project_id": "7373"}, json=[event], auth=("sa.new", "new-secret"))
    assert imported.json()["num_records_imported"] == 1
    rows = export_rows(base, ("sa.new", "new-secret"), project_id="7373")
    assert sorted(r["event"] for r in rows) == ["after", "imported"]
    assert export_rows(base, ("SECRET-NEW", "")) == rows
    # The harness's service account has no role on the new project until one is granted.
    denied = httpx.get(
        f"{base}/api/2.0/export",
        params={"project_id": "7373", "from_date": "2024-01-01", "to_date": today()},
        auth=("sa.user", "sa-secret"),
    )
    assert denied.status_code == 403
    granted = create_service_account(data_dir, "sa.user", "sa-secret", 7373, role="analyst")
    assert granted["projects"] == {"4242": "owner", "7373": "analyst"}
    assert export_rows(base, ("sa.user", "sa-secret"), project_id="7373") == rows
    # Project 4242 saw none of it.
    assert export_rows(base, ("sa.user", "sa-secret"), project_id="4242") == []


def test_refusals_print_an_error_and_exit_1(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create_project(data_dir, 1, "T1", "S1")
    assert "id" in create_project(data_dir, 1, "T2", "S2", ok=False)["error"]
    assert "token" in create_project(data_dir, 2, "T1", "S2", ok=False)["error"]
    assert "timezone" in create_project(data_dir, 3, "T3", "S3", "--timezone", "Mars/Olympus", ok=False)["error"]
    assert "project" in create_service_account(data_dir, "sa", "s", 99, ok=False)["error"]
    create_service_account(data_dir, "sa", "s", 1)
    assert "secret" in create_service_account(data_dir, "sa", "other", 1, ok=False)["error"]
    assert [p["id"] for p in mixhouse("projects", "list", "--data-dir", str(data_dir))] == [1]


def _read_json_block(proc: subprocess.Popen[str], timeout: float) -> Any:
    """The first JSON document the process prints (orjson's indented output ends with a lone `}`)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"serve exited before printing credentials: {''.join(lines)}")
        lines.append(line)
        if line.rstrip("\n") == "}":
            return orjson.loads("".join(lines))
    pytest.fail("serve printed no credentials in time")


@CLOCK
def test_serve_on_an_empty_data_dir_prints_working_credentials(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "empty", free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.err", "w") as err:
        proc = subprocess.Popen(
            [str(MIXHOUSE), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        printed = _read_json_block(proc, timeout=30)
        project, account = printed["project"], printed["service_account"]
        assert isinstance(project["id"], int)
        assert project["token"] and project["api_secret"]
        assert account["username"] and account["secret"]
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (tmp_path / "serve.err").read_text()
                time.sleep(0.05)
        assert track(base, project["token"], "first") == b"1"
        rows = export_rows(base, (account["username"], account["secret"]), project_id=str(project["id"]))
        assert [r["event"] for r in rows] == ["first"]
        assert export_rows(base, (project["api_secret"], "")) == rows
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        assert proc.stdout is not None
        proc.stdout.close()
    # A second start on the same dir creates nothing new.
    again = ServerProcess(data_dir).start()
    again.stop()
    assert "created" not in again.log_path.read_text()
    listed = mixhouse("projects", "list", "--data-dir", str(data_dir))
    assert [p["id"] for p in listed] == [project["id"]]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MIXHOUSE), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["serve", "--port", "99999"], "'--port': 99999 is not in the range 1<=x<=65535"),
        (["serve", "--log-level", "loud"], "'--log-level': 'loud' is not one of"),
        (["projects", "create", "--residency", "moon"], "'--residency': 'moon' is not one of 'us', 'eu', 'in'"),
        (["projects", "create", "--id", "-5"], "'--id': -5 is not in the range"),
        (["service-accounts", "create", "--username", "u", "--project", "0"], "'--project': 0 is not in the range"),
        (["projects", "nonsense"], "No such command 'nonsense'"),
    ],
)
def test_nonsense_options_are_one_line_usage_errors(tmp_path: Path, args: list[str], says: str) -> None:
    data_dir = tmp_path / "data"
    result = run_cli(*args[:2], "--data-dir", str(data_dir), *args[2:]) if args[0] != "serve" else run_cli(*args)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mixhouse: error: "), result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not data_dir.exists()  # nothing created by a refused command


def test_a_mistyped_data_dir_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    missing = tmp_path / "dtaa"
    for args in (
        ["projects", "list"],
        ["projects", "set-rate-limits", "--id", "1", "none"],
        ["service-accounts", "create", "--username", "u", "--project", "1"],
    ):
        result = run_cli(*args[:2], "--data-dir", str(missing), *args[2:])
        assert result.returncode == 1, result
        assert orjson.loads(result.stdout) == {
            "error": f"no mixhouse data dir at {missing} (create one with `mixhouse projects create` or `mixhouse serve`)"
        }
        assert not missing.exists()
    # The commands that create a data dir say so.
    created = run_cli("projects", "create", "--data-dir", str(missing), "--id", "7")
    assert created.returncode == 0 and f"creating a new data dir at {missing}" in created.stderr


def test_version_and_masked_secrets(tmp_path: Path) -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"mixhouse \d+\.\d+\.\d+\n", version.stdout)
    data_dir = tmp_path / "data"
    create_project(data_dir, 4242, "TOKEN123", "SECRET123")
    listed = run_cli("projects", "list", "--data-dir", str(data_dir))
    assert "TOKEN123" not in listed.stdout and "SECRET123" not in listed.stdout
    (project,) = orjson.loads(listed.stdout)
    assert project["token"] == project["api_secret"] == project["api_key"] == "********"
    shown = orjson.loads(run_cli("projects", "list", "--data-dir", str(data_dir), "--show-secrets").stdout)
    assert (shown[0]["token"], shown[0]["api_secret"]) == ("TOKEN123", "SECRET123")


def test_commands_of_other_packages_are_imported_when_used() -> None:
    """`mixhouse serve` and `mixhouse projects` do not import the client's command line, the backup engine
    or the job runner; every command the client adds is still listed, and `flags` keeps the client's
    `eval` beside the server's subcommands."""
    probe = (
        "import sys, click, typer, mixhouse.cli as c\n"
        "c.main.get_command(None, 'serve'); c.main.get_command(None, 'projects')\n"
        "print(sorted(m for m in ('mixhouse_client', 'mixhouse.backup.cli', 'mixhouse.jobs.runner') if m in sys.modules))\n"
        "import mixhouse_client.cli as client\n"
        "print(sorted(typer.main.get_group(client.app).commands) == sorted(c.CLIENT_COMMANDS + ('flags',)))\n"
        "print(sorted(c.main.get_command(None, 'flags').commands))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1] == "True"
    assert {"eval", "import", "show"} <= set(orjson.loads(out[2].replace("'", '"')))
