"""The server's side of `mixhouse backup`: it answers on the control socket with a backup made by its
own engine (the only process that may open the store while it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixhouse.backup import service
from mixhouse.backup.control import ControlSocket
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest


def start_control(data_dir: Path, engine: Engine) -> ControlSocket:
    def handle(request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") != "backup":
            raise BadRequest(f"unknown operation {request.get('op')!r}")
        to = request.get("to")
        if not isinstance(to, str) or not Path(to).is_absolute():
            raise BadRequest("backup needs `to`, an absolute path")
        return service.make_backup(data_dir, Path(to), engine.backup, online=True)

    return ControlSocket(data_dir, handle)
