"""Start building the client venvs of the selected test modules as soon as collection ends, all at once."""

from __future__ import annotations

import pytest

from tests.clients.support import MODULE_VENVS, start_venv_builds


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = {MODULE_VENVS[item.path.name] for item in session.items if item.path.name in MODULE_VENVS}
    start_venv_builds(wanted)
