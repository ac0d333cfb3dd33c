"""`mixhouse users ...`: people who log in to the web app. Registered into mixhouse/cli.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
import orjson

from mixhouse.catalogdb.cli import CATALOG_URL, existing
from mixhouse.domain.project import MAX_PROJECT_ID, Role
from mixhouse.errors import MixhouseError
from mixhouse.web.accounts import MIN_PASSWORD_LENGTH, Accounts


def _print(payload: object) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def _fail(message: str) -> NoReturn:
    """A refusal as the other commands print it: `{"error": ...}` on one line of stdout, exit status 1."""
    click.echo(orjson.dumps({"error": message}).decode())
    sys.exit(1)


@click.group()
def users() -> None:
    """Create users of the web app."""


@users.command("create")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Folder holding the catalog and the event store.",
)
@click.option("--email", required=True)
@click.option("--password", required=True, help=f"At least {MIN_PASSWORD_LENGTH} characters; stored as argon2id.")
@click.option("--project", "project_id", type=click.IntRange(1, MAX_PROJECT_ID), required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.OWNER.value, show_default=True)
@CATALOG_URL
def users_create(
    data_dir: Path, email: str, password: str, project_id: int, role: str, catalog_url: str | None
) -> None:
    """Create a user, or give an existing one (same password) a role on another project. Works whether or
    not a server runs on DATA_DIR; a running server accepts the login at once."""
    catalog = existing(data_dir, catalog_url)
    if catalog is None:  # a mistyped --data-dir is an error, not a new empty store
        _fail(f"no mixhouse data dir at {data_dir} (create one with `mixhouse projects create` or `mixhouse serve`)")
    try:
        user = Accounts(catalog).create_user(email=email, password=password, project_id=project_id, role=Role(role))
    except MixhouseError as exc:
        _fail(exc.message)
    _print({"email": user.email, "projects": {str(p): r.value for p, r in user.roles.items()}})
