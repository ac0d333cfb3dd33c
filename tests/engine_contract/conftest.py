"""The engine contract: tests every engine the build knows must pass, against the `Engine` port only.

Data goes in through a real server running the engine under test (HTTP ingestion, identity merge, dedup);
the server is then stopped and the engine opens the same data folder. `--engine NAME` runs one engine; the
default runs every engine the tests can run in process. `--engine clickhouse` runs the suite through the HTTP
driver against the loopback ClickHouse endpoint (tests/clickhouse_endpoint.py: chDB behind ClickHouse's HTTP
interface), one database per test module; it is not in the default run (the same engine code as `chdb`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mixhouse.compose import open_engine as open_configured
from mixhouse.engine.base import Engine
from mixhouse.settings import ENGINES, load_settings
from tests.clickhouse_endpoint import ClickHouseEndpoint


def _factory(name: str, extra: dict[str, str] | None = None) -> Callable[[Path], Engine]:
    """Opens engine `name` on a data folder through the composition root, as the server does."""

    def open_(data_dir: Path) -> Engine:
        return open_configured(load_settings({"engine": name, "data_dir": data_dir, **(extra or {})}, env={}))

    return open_


IN_PROCESS = tuple(n for n in ENGINES if n != "clickhouse")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine_name" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("engine")
        names = [chosen] if chosen else sorted(IN_PROCESS)
        metafunc.parametrize("engine_name", names, scope="module")


@pytest.fixture(scope="session")
def clickhouse_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEndpoint]:
    with ClickHouseEndpoint(tmp_path_factory.mktemp("contract-clickhouse") / "clickhouse") as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def clickhouse_settings(engine_name: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """For `clickhouse`: the endpoint's URL and a database of this module's own (none for the others)."""
    if engine_name != "clickhouse":
        return {}
    endpoint: ClickHouseEndpoint = request.getfixturevalue("clickhouse_endpoint")
    return {"clickhouse_url": endpoint.url, "clickhouse_database": request.module.__name__.rpartition(".")[2]}


@pytest.fixture(scope="module")
def engine_env(engine_name: str, clickhouse_settings: dict[str, str]) -> dict[str, str]:
    """The environment of a server that writes with the engine under test."""
    return {"MIXHOUSE_ENGINE": engine_name, **{f"MIXHOUSE_{k.upper()}": v for k, v in clickhouse_settings.items()}}


# What an engine does not answer yet: asked anyway, it must refuse with NotSupportedByEngine (a 501 in
# the family's error format), never a wrong answer or a 500. docs/scale-out.md lists the same.
NOT_YET: dict[str, frozenset[str]] = {
    "chdb": frozenset(),
    "clickhouse": frozenset(),
}


@pytest.fixture
def answers(engine_name: str) -> Callable[[str], bool]:
    """Whether the engine under test answers this spec type (by class name) or port method."""
    return lambda what: what not in NOT_YET.get(engine_name, frozenset())


@pytest.fixture
def engine_factory(engine_name: str, clickhouse_settings: dict[str, str]) -> Callable[[Path], Engine]:
    return _factory(engine_name, clickhouse_settings)


@pytest.fixture
def open_engine(engine_factory: Callable[[Path], Engine]) -> Iterator[Callable[[Path], Engine]]:
    opened: list[Engine] = []

    def open_(data_dir: Path) -> Engine:
        engine = engine_factory(data_dir)
        opened.append(engine)
        return engine

    yield open_
    for engine in opened:
        engine.close()
