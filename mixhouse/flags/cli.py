"""`mixhouse flags import --data-dir DIR --project ID FILE`: bring flag definitions over from Mixpanel.

FILE is JSON in the `/flags/definitions` shape (what Mixpanel's `/flags/definitions` returns). Flags keep
their ids, keys, hash salts, statuses and rulesets, so every user keeps the variant Mixpanel gave them; a
flag whose key exists already is replaced. All or nothing: one invalid flag, nothing imported. Works
whether or not a server runs on DIR; a running server serves the new definitions on its next request."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
import orjson

from mixhouse.catalogdb.cli import CATALOG_URL, existing
from mixhouse.domain.project import MAX_PROJECT_ID
from mixhouse.errors import MixhouseError
from mixhouse.flags.service import FlagService


def _print(payload: object) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def _fail(message: str) -> NoReturn:
    """As every mixhouse command refuses: `{"error": ...}` on one line of stdout, exit status 1."""
    click.echo(orjson.dumps({"error": message}).decode())
    sys.exit(1)


@click.group("flags")
def flags() -> None:
    """Manage feature flags."""


@flags.command("import")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--project", "project_id", type=click.IntRange(1, MAX_PROJECT_ID), required=True)
@CATALOG_URL
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def import_(data_dir: Path, project_id: int, catalog_url: str | None, file: Path) -> None:
    """Import FILE ({"flags": [...]} as /flags/definitions returns it) into project ID."""
    catalog = existing(data_dir, catalog_url)
    if catalog is None:
        _fail(f"no mixhouse data dir at {data_dir}")
    project = catalog.project_by_id(project_id)
    if project is None:
        _fail(f"no project with id {project_id}")
    try:
        payload = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        _fail(f"{file} is not JSON: {exc}")
    try:
        docs = FlagService(catalog, project, "mixhouse flags import").import_definitions(payload)
    except MixhouseError as exc:
        _fail(exc.message)
    _print({"imported": len(docs), "flags": [{"id": d["id"], "key": d["key"], "status": d["status"]} for d in docs]})
