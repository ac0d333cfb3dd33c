"""One settings object (mixhouse/settings.py): flags over environment variables over the TOML file over
the defaults, every bad value a one-line error naming its source, the table in docs/operations.md in
step with the code, and a real server started from a config file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mixhouse.errors import SettingsError
from mixhouse.settings import CONFIG_ENV, FIELDS, Settings, load_settings
from tests.server import ServerProcess, seed_catalog

ROOT = Path(__file__).parent.parent
MIXHOUSE = Path(sys.executable).parent / "mixhouse"


def test_flags_beat_env_beat_file_beat_defaults(tmp_path: Path) -> None:
    config = tmp_path / "mixhouse.toml"
    config.write_text('port = 7001\nmax_url_bytes = 1000\nmemory_limit = "1GB"\naccess_log = false\n')
    env = {CONFIG_ENV: str(config), "MIXHOUSE_MAX_URL_BYTES": "2000", "MIXHOUSE_MEMORY_LIMIT": " "}
    settings = load_settings({"port": 7002, "host": None}, env=env)
    assert settings.port == 7002  # flag over file
    assert settings.max_url_bytes == 2000  # env over file
    assert settings.memory_limit == "1GB"  # an empty variable is unset: the file's
    assert settings.access_log is False  # file over default
    assert settings.host == "127.0.0.1"  # a flag not given (None): the default
    assert settings.max_header_bytes == Settings().max_header_bytes
    assert load_settings(env={}) == Settings()
    # --config wins over the variable
    other = tmp_path / "other.toml"
    other.write_text("port = 7003\n")
    assert load_settings(env={CONFIG_ENV: str(config)}, config=other).port == 7003


@pytest.mark.parametrize(
    ("flags", "env", "toml", "says"),
    [
        ({}, {"MIXHOUSE_MAX_URL_BYTES": "lots"}, "", "MIXHOUSE_MAX_URL_BYTES must be a positive integer, got 'lots'"),
        ({}, {"MIXHOUSE_MAX_CONNECTIONS": "0"}, "", "MIXHOUSE_MAX_CONNECTIONS must be a positive integer, got '0'"),
        ({}, {"MIXHOUSE_HEADER_TIMEOUT_SECONDS": "-1"}, "", "MIXHOUSE_HEADER_TIMEOUT_SECONDS must be a positive"),
        (
            {},
            {"MIXHOUSE_FLAGS_COHORT_TTL_S": "nan"},
            "",
            "MIXHOUSE_FLAGS_COHORT_TTL_S must be a number of seconds >= 0",
        ),
        ({}, {"MIXHOUSE_ACCESS_LOG": "maybe"}, "", "MIXHOUSE_ACCESS_LOG must be 1 or 0"),
        (
            {},
            {"MIXHOUSE_ENGINE": "oracle"},
            "",
            "MIXHOUSE_ENGINE must be one of duckdb, chdb, clickhouse, got 'oracle'",
        ),
        ({}, {"MIXHOUSE_MEMORY_LIMIT": "2GB'; DROP"}, "", "MIXHOUSE_MEMORY_LIMIT must be a size such as 2GB"),
        ({}, {}, "max_url_bytes = 1.5\n", "max_url_bytes in {config} must be a positive integer, got 1.5"),
        ({}, {}, "port = 70000\n", "port in {config} must be a port number (1-65535), got 70000"),
        ({}, {}, 'access_log = "yes please"\n', "access_log in {config} must be 1 or 0"),
        ({}, {}, "max_url_byte = 10\n", "config file {config}: unknown setting 'max_url_byte'"),
        ({}, {}, "port = \n", "config file {config} is not valid TOML"),
        ({"loop": "fast"}, {}, "", "--loop must be one of auto, asyncio, uvloop, got 'fast'"),
    ],
)
def test_bad_values_are_one_line_errors_naming_their_source(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], toml: str, says: str
) -> None:
    config = tmp_path / "mixhouse.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError) as info:
        load_settings(flags, env={CONFIG_ENV: str(config), **env})
    assert says.format(config=config) in info.value.message
    assert "\n" not in info.value.message
    assert info.value.code == "invalid_setting"


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(env={CONFIG_ENV: str(tmp_path / "nope.toml")})


def test_the_table_in_operations_md_is_the_code() -> None:
    ops = (ROOT / "docs" / "operations.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (—|`[^`]+`) \| (—|`[^`]+`) \| `([^`]*)` \| [^|]+ \|$", ops, re.M)
    defaults = Settings()

    def shown(value: object) -> str:
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        return f"{value:g}" if isinstance(value, float) else str(value)

    expected = [
        (f.name, f"`{f.flag}`" if f.flag else "—", f"`{f.env}`" if f.env else "—", shown(getattr(defaults, f.name)))
        for f in FIELDS
    ]
    assert rows == expected


def test_the_engine_applies_its_settings(tmp_path: Path) -> None:
    from mixhouse.engine.duckdb import DuckDBEngine
    from mixhouse.engine.kernels import memory

    saved = memory.LIMIT_BYTES
    settings = load_settings(
        {"data_dir": tmp_path / "data"},
        env={"MIXHOUSE_MEMORY_LIMIT": "300MB", "MIXHOUSE_KERNEL_CACHE_BYTES": "4096"},
    )
    engine = DuckDBEngine.from_settings(settings)
    try:
        row = engine.reader().execute("SELECT current_setting('memory_limit')").fetchone()
        assert row is not None and str(row[0]).replace(" ", "") in ("286.1MiB", "300.0MB", "300MB")
        assert memory.LIMIT_BYTES == 4096
    finally:
        engine.close()
        memory.set_limit(saved)


class ConfiguredServer(ServerProcess):
    def __init__(self, data_dir: Path, config: Path, env: dict[str, str]) -> None:
        super().__init__(data_dir, env=env)
        self.config = config

    def serve_args(self) -> list[str]:
        return [*super().serve_args(), "--config", str(self.config)]


def test_a_server_takes_its_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    config = tmp_path / "mixhouse.toml"
    config.write_text("max_url_bytes = 2048\nmax_header_bytes = 3000\n")
    server = ConfiguredServer(data_dir, config, env={"MIXHOUSE_MAX_HEADER_BYTES": "4000"}).start()
    try:
        base = server.url
        assert httpx.get(f"{base}/healthz?pad=" + "x" * 1900).status_code == 200
        assert httpx.get(f"{base}/healthz?pad=" + "x" * 2100).status_code == 414  # the file's cap
        assert httpx.get(f"{base}/healthz", headers={"x-pad": "y" * 3500}).status_code == 200  # env over file
        assert httpx.get(f"{base}/healthz", headers={"x-pad": "y" * 4100}).status_code == 431
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MIXHOUSE_ENGINE": "oracle"}, "MIXHOUSE_ENGINE must be one of duckdb, chdb, clickhouse, got 'oracle'"),
        ({"MIXHOUSE_WEB_LOGIN_FAILURES": "0"}, "MIXHOUSE_WEB_LOGIN_FAILURES must be a positive integer, got '0'"),
        ({CONFIG_ENV: "/nonexistent/mixhouse.toml"}, "config file /nonexistent/mixhouse.toml does not exist"),
    ],
)
def test_serve_refuses_bad_settings_with_one_line(tmp_path: Path, env: dict[str, str], says: str) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [str(MIXHOUSE), "serve", "--data-dir", str(data_dir), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert done.returncode == 2, done
    assert done.stderr == f"mixhouse: error: {says}\n"
    assert not data_dir.exists()  # nothing created by a refused start
