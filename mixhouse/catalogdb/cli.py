"""`mixhouse catalog copy`: a data folder's SQLite catalog into a shared PostgreSQL catalog."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from mixhouse.errors import MixhouseError


@click.group("catalog")
def catalog() -> None:
    """The catalog database (projects, accounts, saved reports, jobs, ...)."""


@catalog.command("copy")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder whose catalog.sqlite3 is copied (only read).",
)
@click.option("--catalog-url", required=True, help="The PostgreSQL catalog to fill (postgresql://...; empty).")
def copy(data_dir: Path, catalog_url: str) -> None:
    """Copy DATA_DIR's catalog into an empty PostgreSQL catalog, every row and id, in one transaction."""
    from mixhouse.catalogdb.copy import copy_catalog

    try:
        counts = copy_catalog(data_dir, catalog_url)
    except MixhouseError as exc:
        click.echo(orjson.dumps({"error": exc.message}).decode())
        sys.exit(1)
    click.echo(orjson.dumps({"copied": counts}, option=orjson.OPT_INDENT_2).decode())
