"""`mixhouse gdpr-tokens create --data-dir DIR --project ID`: a GDPR OAuth token for the GDPR API of a
project, printed once as JSON (the catalog keeps only its hash). Works whether or not a server runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click
import orjson

from mixhouse.catalogdb.cli import CATALOG_URL, existing
from mixhouse.domain.project import MAX_PROJECT_ID
from mixhouse.errors import MixhouseError
from mixhouse.gdpr.tokens import DEFAULT_DAYS, GdprTokens


def _fail(message: str) -> NoReturn:
    click.echo(orjson.dumps({"error": message}).decode())
    sys.exit(1)


@click.group("gdpr-tokens")
def gdpr_tokens() -> None:
    """Manage OAuth tokens of the GDPR API."""


@gdpr_tokens.command("create")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--project", "project_id", type=click.IntRange(1, MAX_PROJECT_ID), required=True)
@click.option("--user", default="gdpr-admin", show_default=True, help="The requesting_user of its requests.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_DAYS, show_default=True)
@CATALOG_URL
def create(data_dir: Path, project_id: int, user: str, days: float, catalog_url: str | None) -> None:
    """Create a token for project ID and print it (once) with its expiry."""
    catalog = existing(data_dir, catalog_url)
    if catalog is None:
        _fail(f"no mixhouse data dir at {data_dir}")
    try:
        token, grant = GdprTokens(catalog).create(project_id, user, days=days)
    except MixhouseError as exc:
        _fail(exc.message)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(grant.expires_at))
    click.echo(
        orjson.dumps(
            {"token": token, "project_id": project_id, "user": user, "expires_at": expires},
            option=orjson.OPT_INDENT_2,
        ).decode()
    )
