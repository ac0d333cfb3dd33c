"""The client's command line through the real `mixhouse` console script, against a live server:
import (JSON lines gzip, CSV, Parquet; refused records to a file; resumable), export back the same
events (resumable), reports as a table and as a chart under a pseudo-terminal, profiles, one-line errors
that never show a secret. 1M events are timed in bench/bench_client_cli.py, not here."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

MIXHOUSE = Path(sys.executable).parent / "mixhouse"
T0 = int(datetime(2024, 2, 1, tzinfo=UTC).timestamp())
N = 30_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("cli") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def env_for(server: ServerProcess, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXHOUSE_", "MP_"))}
    env.update(
        MIXHOUSE_BASE_URL=server.url,
        MIXHOUSE_USERNAME=SA_USER,
        MIXHOUSE_SECRET=SA_SECRET,
        MIXHOUSE_PROJECT_ID=str(PROJECT_ID),
    )
    env.update(extra)
    return env


def run(server: ServerProcess, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(MIXHOUSE), *args], capture_output=True, text=True, timeout=300, env=env_for(server, **env)
    )
    assert (result.returncode == 0) is ok, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    return result


def event(i: int, name: str = "Played") -> dict[str, Any]:
    return {
        "event": name,
        "properties": {"distinct_id": f"user-{i % 997}", "time": T0 + i, "level": i % 5, "score": i * 0.5},
    }


def key(e: dict[str, Any]) -> tuple[Any, ...]:
    p = e["properties"]
    return (e["event"], p["distinct_id"], p["time"], p["level"], p["score"], p["$insert_id"])


def test_import_a_gzip_jsonl_file_and_export_back_the_same_events(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl.gz"
    with gzip.open(source, "wt") as f:
        for i in range(N):
            f.write(json.dumps(event(i)) + "\n")
    imported = run(server, "import", str(source))
    assert f"imported {N:,} events" in imported.stderr and "events/s" in imported.stderr
    assert not (tmp_path / "events.jsonl.gz.mixhouse-import").exists()
    out = tmp_path / "back.jsonl"
    exported = run(server, "export", "--from-date", "2024-02-01", "--to-date", "2024-02-01", "--output", str(out))
    assert f"exported {N:,} events" in exported.stderr
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e for e in back if e["event"] == "Played"] == back
    from mixhouse_client import content_insert_id

    assert sorted(key(e) for e in back) == sorted(
        key({"event": e["event"], "properties": {**e["properties"], "$insert_id": content_insert_id(e)}})
        for e in (event(i) for i in range(N))
    )
    # to stdout, with the filters outside scripts use
    filtered = run(
        server,
        "export",
        "--from-date",
        "2024-02-01",
        "--to-date",
        "2024-02-01",
        "--event",
        "Played",
        "--where",
        'properties["level"] == 3',
    )
    lines = [json.loads(line) for line in filtered.stdout.splitlines()]
    assert len(lines) == N // 5 and all(e["properties"]["level"] == 3 for e in lines)


def test_reimporting_an_export_file_is_deduplicated(server: ServerProcess, tmp_path: Path) -> None:
    events = [event(i, "Echo") for i in range(300)]
    source = tmp_path / "echo.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    run(server, "import", str(source))
    out = tmp_path / "echo-back.jsonl"
    run(server, "export", "--from-date", "2024-02-01", "--to-date", "2024-02-01", "--event", "Echo", "-o", str(out))
    run(server, "import", str(out))  # the exported lines, $insert_id included
    counts = run(
        server,
        "query",
        "segmentation",
        "--event",
        "Echo",
        "--from-date",
        "2024-02-01",
        "--to-date",
        "2024-02-01",
        "--json",
    )
    assert json.loads(counts.stdout)["data"]["values"]["Echo"] == {"2024-02-01": 300}


def test_csv_and_parquet_files_with_refused_records_written_to_a_file(server: ServerProcess, tmp_path: Path) -> None:
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text(
        "event,distinct_id,time,plan,amount,trial\n"
        "Bought,007,2024-02-02T10:00:00,pro,9.5,true\n"
        "Bought,008,1706868000,free,3,false\n"
        "Bought,009,,free,1,false\n"  # no time: refused by the server
    )
    result = run(server, "import", str(csv_file), ok=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: imported 2 events")
    refused = [json.loads(line) for line in (tmp_path / "rows.csv.errors.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in refused] == [(3, "properties.time")]
    stored = {
        e["properties"]["distinct_id"]: e["properties"]
        for e in export(server.url, from_date="2024-02-02", to_date="2024-02-02", event='["Bought"]')
    }
    assert stored["007"]["time"] == int(datetime(2024, 2, 2, 10, tzinfo=UTC).timestamp())
    assert (stored["007"]["amount"], stored["007"]["trial"], stored["008"]["amount"]) == (9.5, True, 3)

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "event": ["Parq"] * 4,
            "distinct_id": ["p1", "p2", "p3", "p4"],
            "time": [T0 + 2 * 86400 + i for i in range(4)],
            "size": [1, 2, 3, 4],
        }
    )
    pq.write_table(table, tmp_path / "rows.parquet")
    run(server, "import", str(tmp_path / "rows.parquet"))
    parq = export(server.url, from_date="2024-02-03", to_date="2024-02-03", event='["Parq"]')
    assert sorted((e["properties"]["distinct_id"], e["properties"]["size"]) for e in parq) == [
        ("p1", 1),
        ("p2", 2),
        ("p3", 3),
        ("p4", 4),
    ]


def test_an_interrupted_import_resumes_where_it_stopped(server: ServerProcess, tmp_path: Path) -> None:
    total = 20_000
    source = tmp_path / "long.jsonl"
    source.write_text("".join(json.dumps(event(i, "Resumed")) + "\n" for i in range(total)))
    state = tmp_path / "long.jsonl.mixhouse-import"
    proc = subprocess.Popen(
        [str(MIXHOUSE), "import", str(source), "--batch-size", "100", "--workers", "1"],
        env=env_for(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.strip() == "error: interrupted", stderr
    done = json.loads(state.read_text())["done"]
    assert 0 < done < total
    second = run(server, "import", str(source))
    rest = int(second.stderr.split("imported ")[1].split(" events")[0].replace(",", ""))
    assert rest == total - done
    stored = export(server.url, from_date="2024-02-01", to_date="2024-02-01", event='["Resumed"]')
    assert len({e["properties"]["$insert_id"] for e in stored}) == total
    assert len(stored) <= total + 3 * 100  # at most the batches in flight (2 × workers + 1) were sent twice


def test_an_interrupted_export_resumes_at_the_first_unfinished_day(server: ServerProcess, tmp_path: Path) -> None:
    days = [event(i * 86400 // 4, "Daily") for i in range(4 * 6)]  # four events a day, 2024-02-01..06
    source = tmp_path / "daily.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in days))
    run(server, "import", str(source))
    out = tmp_path / "daily-out.jsonl"
    full = run(
        server, "export", "--from-date", "2024-02-01", "--to-date", "2024-02-06", "--event", "Daily", "-o", str(out)
    )
    assert "exported 24 events" in full.stderr
    complete = out.read_bytes()
    lines = complete.splitlines(keepends=True)
    # as if a run had finished 2024-02-01..03 and died writing the 4th day
    offset = len(b"".join(lines[:12]))
    out.write_bytes(complete[: offset + 40])
    state = tmp_path / "daily-out.jsonl.mixhouse-export"
    from mixhouse_client._cli_files import fingerprint

    query = fingerprint(datetime(2024, 2, 1).date(), datetime(2024, 2, 6).date(), ["Daily"], None, False)
    state.write_text(json.dumps({"query": query, "day": "2024-02-03", "offset": offset}))
    resumed = run(
        server, "export", "--from-date", "2024-02-01", "--to-date", "2024-02-06", "--event", "Daily", "-o", str(out)
    )
    assert "exported 12 events" in resumed.stderr
    assert out.read_bytes() == complete and not state.exists()


def read_pty(argv: list[str], env: dict[str, str]) -> str:
    """Run under a pseudo-terminal, as a person at a terminal would; its output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm", "COLUMNS": "100"}
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode()


def test_a_query_as_a_table_and_as_a_chart_in_a_terminal(server: ServerProcess, tmp_path: Path) -> None:
    rows = [
        {
            "event": "Viewed",
            "properties": {
                "distinct_id": f"v{i}",
                "time": T0 + 5 * 86400 + (i % 3) * 86400,
                "plan": "pro" if i % 4 else "free",
            },
        }
        for i in range(30)
    ]
    source = tmp_path / "viewed.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(server, "import", str(source))
    argv = [
        str(MIXHOUSE),
        "query",
        "segmentation",
        "--event",
        "Viewed",
        "--from-date",
        "2024-02-06",
        "--to-date",
        "2024-02-08",
    ]
    table = read_pty(argv, env_for(server))
    assert "\x1b[" in table  # a terminal gets colour
    plain = strip_ansi(table)
    assert "┃ date" in plain and "Viewed" in plain
    assert all(
        line in plain for line in ("│ 2024-02-06 │     10 │", "│ 2024-02-07 │     10 │", "│ 2024-02-08 │     10 │")
    )
    chart = strip_ansi(read_pty([*argv, "--on", 'properties["plan"]', "--chart"], env_for(server)))
    assert re.search(r"^pro  [▁▂▃▄▅▆▇█]{3} 22$", chart, re.M) and re.search(r"^free [▁▂▃▄▅▆▇█]{3} 8$", chart, re.M)
    bars = strip_ansi(read_pty([*argv, "--chart"], env_for(server)))
    assert bars.count("2024-02-0") == 3 and "█" * 20 in bars
    csv_out = run(server, *argv[1:], "--csv").stdout
    assert csv_out.splitlines() == ["date,Viewed", "2024-02-06,10", "2024-02-07,10", "2024-02-08,10"]


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


def test_funnel_retention_insights_and_engage(server: ServerProcess, tmp_path: Path) -> None:
    from mixhouse_client import Client, ServiceAccount

    rows = [
        {"event": step, "properties": {"distinct_id": f"f{u}", "time": T0 + 10 * 86400 + u * 60 + k}}
        for u in range(10)
        for k, step in enumerate(["Open", "Pay"][: 1 + (u % 2)])
    ]
    with Client(base_url=server.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID), token="TOKEN123") as c:
        assert c.import_events(rows).ok
        funnel_id = c.saved_funnels.create({"name": "pay", "steps": ["Open", "Pay"]})["funnel_id"]
        bookmark = c.saved_reports.create(
            {"name": "opens", "query": {"event": "Open", "from_date": "2024-02-11", "to_date": "2024-02-11"}}
        )["id"]
        c.engage([{"$distinct_id": f"f{u}", "$set": {"customer_id": f"hs-{u}", "tags": ["a", "b"]}} for u in range(3)])
    dates = ["--from-date", "2024-02-11", "--to-date", "2024-02-11"]
    funnel = strip_ansi(
        read_pty([str(MIXHOUSE), "query", "funnel", "--funnel-id", str(funnel_id), *dates, "--chart"], env_for(server))
    )
    assert "1. Open" in funnel and "2. Pay" in funnel and " 10" in funnel and " 5" in funnel
    funnel_csv = run(server, "query", "funnel", "--funnel-id", str(funnel_id), *dates, "--csv").stdout.splitlines()
    assert funnel_csv[1:] == ["1,Open,10,100.0%,100.0%", "2,Pay,5,50.0%,50.0%"]
    retention = run(server, "query", "retention", *dates, "--born-event", "Open", "--csv").stdout.splitlines()
    assert retention[1].startswith("2024-02-11,10")
    insights = run(server, "query", "insights", "--bookmark-id", str(bookmark), "--json").stdout
    assert sum(json.loads(insights)["series"]["Open"].values()) == 10
    profiles = run(server, "engage", "--where", 'user["customer_id"] == "hs-1"').stdout.splitlines()
    assert [json.loads(p)["$distinct_id"] for p in profiles] == ["f1"]
    as_csv = run(server, "engage", "--format", "csv", "--property", "customer_id", "--property", "tags").stdout
    assert as_csv.splitlines()[0] == "$distinct_id,customer_id,tags"
    assert 'f0,hs-0,"[""a"", ""b""]"' in as_csv.splitlines()
    every = run(server, "engage", "--format", "csv").stdout.splitlines()
    assert every[0] == "$distinct_id,$last_seen,customer_id,tags" and len(every) == 4


def test_errors_are_one_line_without_secrets(server: ServerProcess, tmp_path: Path) -> None:
    args = ["query", "segmentation", "--event", "X", "--from-date", "2024-02-01", "--to-date", "2024-02-01"]
    wrong = run(server, *args, ok=False, MIXHOUSE_SECRET="hunter2-wrong")
    assert wrong.stderr.count("\n") == 1 and wrong.stderr.startswith("error: 401")
    assert "hunter2" not in wrong.stderr + wrong.stdout
    # the project secret, as MIXHOUSE_API_SECRET, instead of a service account
    env = {k: v for k, v in env_for(server).items() if k not in ("MIXHOUSE_USERNAME", "MIXHOUSE_SECRET")}
    with_secret = subprocess.run(
        [str(MIXHOUSE), *args, "--json"], capture_output=True, text=True, env={**env, "MIXHOUSE_API_SECRET": SECRET}
    )
    assert with_secret.returncode == 0 and json.loads(with_secret.stdout)["data"]["values"] == {"X": {"2024-02-01": 0}}
    bad_where = run(server, *args, "--where", 'properties["a"] ==', ok=False)
    assert bad_where.stderr.count("\n") == 1 and bad_where.stderr.startswith("error: 400")
    missing = run(server, "import", str(tmp_path / "nope.jsonl"), ok=False)
    assert missing.stderr.count("\n") == 1 and "nope.jsonl" in missing.stderr
    down = run(server, *args, ok=False, MIXHOUSE_BASE_URL="http://127.0.0.1:9", MIXHOUSE_TIMEOUT="2")
    assert down.stderr.count("\n") == 1 and down.stderr.startswith("error: GET http://127.0.0.1:9/")
    none = subprocess.run(
        [str(MIXHOUSE), *args], capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")}
    )
    assert none.returncode == 1 and none.stderr.startswith("error: no credentials")


def test_settings_from_a_config_file_below_the_environment(server: ServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "client.toml"
    config.write_text(
        f'base_url = "{server.url}"\nusername = "{SA_USER}"\nsecret = "{SA_SECRET}"\nproject_id = {PROJECT_ID}\n'
    )
    bare = {"PATH": os.environ.get("PATH", ""), "MIXHOUSE_CONFIG": str(config)}
    args = [
        str(MIXHOUSE),
        "query",
        "segmentation",
        "--event",
        "X",
        "--from-date",
        "2024-02-01",
        "--to-date",
        "2024-02-01",
    ]
    from_file = subprocess.run([*args, "--json"], capture_output=True, text=True, env=bare)
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["data"]["values"] == {"X": {"2024-02-01": 0}}
    overridden = subprocess.run(args, capture_output=True, text=True, env={**bare, "MIXHOUSE_SECRET": "env-wins"})
    assert overridden.returncode == 1 and overridden.stderr.startswith("error: 401")
    config.write_text('base_url = "x"\npassword = "p"\n')
    unknown = subprocess.run(args, capture_output=True, text=True, env=bare)
    assert (
        unknown.returncode == 1 and "unknown setting 'password'" in unknown.stderr and unknown.stderr.count("\n") == 1
    )
    version = subprocess.run([str(MIXHOUSE.parent / "mixhouse-client"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == "mixhouse-client 0.1.0"


def test_import_shows_a_progress_bar_with_events_per_second_in_a_terminal(
    server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "progress.jsonl"
    source.write_text("".join(json.dumps(event(i, "Progress")) + "\n" for i in range(5000)))
    screen = strip_ansi(read_pty([str(MIXHOUSE), "import", str(source), "--batch-size", "500"], env_for(server)))
    assert re.search(r"import .*━.* 100% +5,000 events +[\d,]+ events/s", screen), screen
    assert "imported 5,000 events in" in screen


def test_usage_errors_are_one_line_from_both_commands(tmp_path: Path) -> None:
    for command in (MIXHOUSE, MIXHOUSE.parent / "mixhouse-client"):
        result = subprocess.run(
            [str(command), "query", "segmentation", "--from-date", "2024-02-01"], capture_output=True, text=True
        )
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "Missing option '--event'" in result.stderr
