"""The engine contract: tests every engine the build knows must pass, against the `Engine` port only.

Data goes in through a real server (HTTP ingestion, identity merge, dedup); the server is then stopped and
each engine opens the same data folder. `--engine NAME` runs one engine; the default runs them all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mixhouse.compose import open_engine as open_configured
from mixhouse.engine.base import Engine
from mixhouse.settings import ENGINES, load_settings


def _factory(name: str) -> Callable[[Path], Engine]:
    """Opens engine `name` on a data folder through the composition root, as the server does."""

    def open_(data_dir: Path) -> Engine:
        return open_configured(load_settings({"engine": name, "data_dir": data_dir}, env={}))

    return open_


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine_factory" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("engine")
        names = [chosen] if chosen else sorted(ENGINES)
        metafunc.parametrize("engine_factory", [_factory(n) for n in names], ids=names)


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
