"""The README's five-minute tour, run as written: its shell blocks in order, in one bash, from the
repository's folder. Only the first line's settings (the data folder and the port) are pointed at a
temporary folder and a free port, so that the tour never meets another server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.server import free_port

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "export DATA_DIR=/tmp/tour PORT=8080"


def tour_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_the_tour_runs_as_pasted(tmp_path: Path) -> None:
    blocks = tour_blocks()
    assert blocks and blocks[0].startswith(SETTINGS + "\n"), "the tour starts with its settings line"
    port = free_port()
    script = "\n".join(blocks).replace(SETTINGS, f"export DATA_DIR={tmp_path / 'tour'} PORT={port}", 1)
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "PORT", "MAKEFLAGS", "MAKELEVEL")}
    out_path, err_path = tmp_path / "tour.out", tmp_path / "tour.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        # Files, not pipes: the server that `make serve &` leaves running would hold a pipe open.
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: `make serve &` and its server go with it
        )
        try:
            proc.wait(timeout=300)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert proc.returncode == 0, (stdout, stderr)
    assert "default project" not in stdout  # the tour's own project, no extra one printed into the shell
    # Lines that are one JSON document each (the CLI's indented JSON spans lines and is left out).
    lines = stdout.splitlines()
    documents: list[Any] = [orjson.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]
    exported = [d for d in documents if "event" in d]
    assert [e["event"] for e in exported] == ["Old Purchase", "Signed Up"]
    assert exported[0]["properties"]["amount"] == 9.5
    assert any(d.get("status") == "ok" for d in documents)  # /readyz once the server was up
    (segmentation,) = [d for d in documents if "data" in d]
    (day,) = segmentation["data"]["series"]
    assert segmentation["data"]["values"] == {"pro": {day: 1}}
