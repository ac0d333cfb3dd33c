"""`mixhouse backup --data-dir DIR --to PATH` and `mixhouse restore --from PATH --data-dir DIR`.

A backup of a data dir a server has open is made by that server (asked over its control socket) while it
keeps taking writes; with no server running, this command copies the store itself, read-only. Either way
the backup holds everything acknowledged before the command started. Prints the backup's manifest (or
`{"error": ...}` and exit status 1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
import duckdb
import orjson

from mixhouse.backup import control, service
from mixhouse.engine.duckdb.backup import copy_file, table_counts
from mixhouse.errors import MixhouseError

FOLDER = click.Path(file_okay=False, path_type=Path)


def _fail(message: str) -> NoReturn:
    click.echo(orjson.dumps({"error": message}).decode())
    sys.exit(1)


def _print(payload: object) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def _offline(data_dir: Path, to: Path) -> dict[str, object]:
    events = data_dir / service.EVENTS_FILE
    if not events.is_file():
        raise service.BackupError(f"{data_dir} holds no event store yet (start the server once)")

    def copy(target: Path) -> dict[str, int]:
        try:
            return copy_file(events, target)
        except duckdb.Error as exc:
            reason = str(exc).splitlines()[0]
            if "lock" in reason.lower():
                raise service.BackupError(
                    f"the event store is open in another process that does not answer on {control.SOCKET_NAME}:"
                    f" stop it, or back up through it ({reason})"
                ) from exc
            raise service.BackupError(f"the event store could not be copied: {reason}") from exc

    return service.make_backup(data_dir, to, copy, online=False)


@click.command()
@click.option("--data-dir", type=FOLDER, required=True, help="The data folder, whether or not a server runs on it.")
@click.option("--to", "to", type=FOLDER, required=True, help="A new (or empty) folder for the backup.")
def backup(data_dir: Path, to: Path) -> None:
    """Back up a data folder, online: the server that has it open makes the copy while it takes writes."""
    try:
        service.check_backup_source(data_dir)
        reply = control.ask(data_dir, {"op": "backup", "to": str(to.resolve())})
        manifest = reply if reply is not None else _offline(data_dir, to)
    except MixhouseError as exc:
        _fail(exc.message)
    if "error" in manifest:
        _fail(str(manifest["error"]))
    _print(manifest)


@click.command()
@click.option("--from", "source", type=FOLDER, required=True, help="A folder `mixhouse backup` wrote.")
@click.option("--data-dir", type=FOLDER, required=True, help="A new (or empty) data folder to restore into.")
def restore(source: Path, data_dir: Path) -> None:
    """Restore a backup into a new data folder (then `mixhouse serve --data-dir` it)."""
    try:
        _print(service.restore(source, data_dir, table_counts))
    except MixhouseError as exc:
        _fail(exc.message)
