"""`mixhouse service-accounts list|delete|rotate`: what the Service Accounts API does, from the command
line, on a data dir (whether or not a server runs on it; a running server sees the change at its next
request: a deleted account or a rotated secret stops working at once).

    list    the accounts (of one organisation with --organization), never their secrets
    delete  an account and its project roles
    rotate  a new secret for an account, printed this once (only its argon2id hash is stored)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
import orjson

from mixhouse.accounts.api import account_shape
from mixhouse.accounts.store import AccountStore
from mixhouse.catalogdb.cli import CATALOG_URL, existing
from mixhouse.errors import MixhouseError

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Folder holding the catalog and the event store.",
)


def _print(payload: object) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def _fail(message: str) -> NoReturn:
    """As every mixhouse command refuses: `{"error": ...}` on one line of stdout, exit status 1."""
    click.echo(orjson.dumps({"error": message}).decode())
    sys.exit(1)


def _store(data_dir: Path, catalog_url: str | None) -> AccountStore:
    catalog = existing(data_dir, catalog_url)
    if catalog is None:
        _fail(f"no mixhouse data dir at {data_dir} (create one with `mixhouse projects create` or `mixhouse serve`)")
    return AccountStore(catalog)


@click.command("list")
@_DATA_DIR
@CATALOG_URL
@click.option(
    "--organization", "organization_id", type=click.IntRange(1), default=None, help="Only this organisation's."
)
def list_accounts(data_dir: Path, catalog_url: str | None, organization_id: int | None) -> None:
    """List service accounts (ids, roles, projects, expiry, last use; never secrets)."""
    store = _store(data_dir, catalog_url)
    accounts = store.all() if organization_id is None else store.in_organization(organization_id)
    _print([{**account_shape(a), "organization_id": a.organization_id} for a in accounts])


@click.command("delete")
@_DATA_DIR
@CATALOG_URL
@click.option("--username", required=True)
def delete_account(data_dir: Path, catalog_url: str | None, username: str) -> None:
    """Delete a service account and its project roles."""
    store = _store(data_dir, catalog_url)
    try:
        account = store.by_username(username)
        store.delete(account)
    except MixhouseError as exc:
        _fail(exc.message)
    _print({"deleted": account.username, "id": account.id})


@click.command("rotate")
@_DATA_DIR
@CATALOG_URL
@click.option("--username", required=True)
def rotate_secret(data_dir: Path, catalog_url: str | None, username: str) -> None:
    """Give a service account a new secret (printed once); the old one stops working at once."""
    store = _store(data_dir, catalog_url)
    try:
        account = store.by_username(username)
        secret = store.rotate(account)
    except MixhouseError as exc:
        _fail(exc.message)
    _print({"username": account.username, "id": account.id, "secret": secret})


def add_commands(group: click.Group) -> None:
    for command in (list_accounts, delete_account, rotate_secret):
        group.add_command(command)
