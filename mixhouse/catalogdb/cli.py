"""`mixhouse catalog copy`: a data folder's SQLite catalog into a shared PostgreSQL catalog."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from mixhouse.catalog import CATALOG_FILE, Catalog
from mixhouse.errors import MixhouseError

# Every command that opens the catalog takes it (or the variable, as `serve` takes MIXHOUSE_CATALOG_URL).
CATALOG_URL = click.option(
    "--catalog-url",
    envvar="MIXHOUSE_CATALOG_URL",
    default=None,
    help="The shared catalog in PostgreSQL (postgresql://...; or MIXHOUSE_CATALOG_URL) instead of DATA_DIR's.",
)


def existing(data_dir: Path, catalog_url: str | None) -> Catalog | None:
    """The shared catalog at `catalog_url`, or DATA_DIR's when it has one (None: no such data dir)."""
    if catalog_url:
        return Catalog(data_dir, url=catalog_url)
    return Catalog(data_dir) if (data_dir / CATALOG_FILE).is_file() else None


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
