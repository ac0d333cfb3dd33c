"""The `mixhouse` command: serve, and manage projects and service accounts in a data dir.

Every error is one line and an exit status, never a traceback: usage errors (a bad option value) go to
stderr as `mixhouse: error: ...` with status 2; refusals of the catalog print `{"error": "..."}` on
stdout with status 1, so that scripts that read the JSON output read the error the same way.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from mixhouse.catalog import CATALOG_FILE, Catalog
from mixhouse.catalogdb.cli import CATALOG_URL
from mixhouse.domain.project import MAX_PROJECT_ID, RESIDENCIES, IdMerge, Role, TimeMode
from mixhouse.errors import MixhouseError
from mixhouse.settings import ENGINES

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Folder holding the catalog and the event store.",
)
PROJECT_ID = click.IntRange(1, MAX_PROJECT_ID)


def _print(payload: object) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def _fail(message: str) -> NoReturn:
    """A refusal: `{"error": ...}` on one line of stdout, exit status 1."""
    click.echo(orjson.dumps({"error": message}).decode())
    sys.exit(1)


def existing_catalog(data_dir: Path, catalog_url: str | None = None) -> Catalog:
    """The catalog of a data dir that must already exist: a mistyped --data-dir is an error, not a new
    empty store. With `catalog_url`, the shared catalog there (created if empty)."""
    if catalog_url:
        return Catalog(data_dir, url=catalog_url)
    if not (data_dir / CATALOG_FILE).is_file():
        _fail(f"no mixhouse data dir at {data_dir} (create one with `mixhouse projects create` or `mixhouse serve`)")
    return Catalog(data_dir)


def new_or_existing_catalog(data_dir: Path, catalog_url: str | None = None) -> Catalog:
    """The catalog of a data dir, created (and said so on stderr) when the folder holds none yet; with
    `catalog_url`, the shared catalog there."""
    if catalog_url:
        return Catalog(data_dir, url=catalog_url)
    if not (data_dir / CATALOG_FILE).is_file():
        click.echo(f"mixhouse: creating a new data dir at {data_dir.resolve()}", err=True)
    return Catalog(data_dir)


class LazyGroup(click.Group):
    """A group whose subcommands from other packages are imported only when one of them is run (or listed
    by --help): `mixhouse serve` and `mixhouse projects` do not pay for the client's command line (typer,
    rich, httpx), the backup engine or the job runner."""

    def __init__(self, *args: Any, lazy: Mapping[str, Callable[[], click.Command]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Callable[[], click.Command]] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name](), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("mixhouse"), "--version", "-V", prog_name="mixhouse", message="%(prog)s %(version)s")
def main() -> None:
    """mixhouse: a self-hosted analytics server that speaks Mixpanel's HTTP APIs."""


def run(argv: list[str] | None = None) -> None:
    """The console script: `main` with one-line errors."""
    try:
        main.main(args=argv, prog_name="mixhouse", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mixhouse: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"mixhouse: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except MixhouseError as exc:
        _fail(exc.message)
    except OSError as exc:
        click.echo(f"mixhouse: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)


def _log_to_stderr(level: str) -> None:
    """The server's own log lines (kernels compiling, writer retries) on stderr, at the --log-level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("mixhouse")
    logger.addHandler(handler)
    logger.setLevel("DEBUG" if level == "trace" else level.upper())


@main.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A TOML file of settings (or MIXHOUSE_SERVER_CONFIG); flags and MIXHOUSE_* variables override it.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the catalog and the event store.  [default: data]",
)
@click.option("--host", default=None, help="[default: 127.0.0.1]")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="[default: 8080]")
@click.option("--log-level", default=None, type=click.Choice(LOG_LEVELS), help="[default: warning]")
@click.option(
    "--loop",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default=None,
    help="Event loop (or MIXHOUSE_LOOP): auto is uvloop when installed. asyncio for runs under libfaketime "
    "(uvloop wakes late there).  [default: auto]",
)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True), default=None, help="Serve HTTPS.")
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option(
    "--geoip",
    default=None,
    help="IP geolocation at ingestion (or MIXHOUSE_GEOIP): builtin (country), off, or the path of a "
    "GeoIP2/GeoLite2 .mmdb file.  [default: builtin]",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="Storage engine (or MIXHOUSE_ENGINE): duckdb, chdb (ClickHouse in process, in --data-dir) or "
    "clickhouse (a server at --clickhouse-url).  [default: duckdb]",
)
@click.option("--clickhouse-url", default=None, help="ClickHouse HTTP URL for --engine clickhouse.")
@click.option(
    "--clickhouse-cluster", default=None, help="Create the tables ON CLUSTER this cluster (docs/scale-out.md)."
)
@click.option("--cluster-url", default=None, help="PostgreSQL URL shared by several mixhouse processes.")
@click.option(
    "--catalog-url", default=None, help="PostgreSQL URL of a catalog shared by several processes (docs/scale-out.md)."
)
def serve(config: Path | None, **flags: object) -> None:
    """Serve every API family on one port. Settings: docs/operations.md#settings."""
    import uvicorn

    from mixhouse.http.app import create_app
    from mixhouse.http.protocol import EdgeLimits
    from mixhouse.private import UMASK
    from mixhouse.settings import load_settings

    os.umask(UMASK)  # files the engines create later (WALs, spill files) are owner-only too

    try:
        settings = load_settings(flags, config=config)  # the one read of the environment
        app = create_app(settings)  # a bad --geoip or engine stops here, before anything is created
    except MixhouseError as exc:
        raise click.UsageError(exc.message) from exc
    data_dir = settings.data_dir
    catalog = new_or_existing_catalog(data_dir, settings.catalog_url)
    with catalog.connection().write():  # (servers starting together on a shared catalog: one creates it)
        fresh = not catalog.projects()
        if fresh:
            project = catalog.create_project(name="default")
            account, secret = catalog.create_service_account(
                username="mixhouse-admin", secret=None, project_id=project.id, role=Role.OWNER
            )
    if fresh:
        _print(
            {
                "created": "default project and service account (keep these)",
                "project": project.public_dict(),
                "service_account": {"username": account.username, "secret": secret, "role": "owner"},
            }
        )
    _log_to_stderr(settings.log_level)
    scheme = "https" if settings.ssl_certfile else "http"
    click.echo(f"mixhouse serving {data_dir} on {scheme}://{settings.host}:{settings.port}", err=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        loop=settings.loop,  # validated against uvicorn's names in mixhouse.settings
        access_log=False,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
        **EdgeLimits.from_settings(settings).uvicorn_options(),
    )


@main.group()
def projects() -> None:
    """Create and list projects."""


@projects.command("create")
@DATA_DIR
@CATALOG_URL
@click.option("--id", "project_id", type=PROJECT_ID, default=None)
@click.option("--name", default="default")
@click.option("--token", default=None, help="Project token (generated if omitted).")
@click.option("--secret", default=None, help="Project API secret (generated if omitted).")
@click.option("--api-key", default=None, help="API key for signed legacy v2 requests (generated if omitted).")
@click.option("--timezone", default="UTC", show_default=True)
@click.option(
    "--id-merge",
    type=click.Choice([m.value for m in IdMerge]),
    default=IdMerge.SIMPLIFIED.value,
    show_default=True,
)
@click.option(
    "--time-mode",
    type=click.Choice([m.value for m in TimeMode]),
    default=TimeMode.UTC.value,
    show_default=True,
    help="utc: true epoch times; project: export times shifted into the timezone.",
)
@click.option("--residency", type=click.Choice(RESIDENCIES), default="us", show_default=True)
@click.option(
    "--rate-limits",
    default="none",
    show_default=True,
    help="none; mixpanel (Mixpanel's published limits); or a JSON object of limits (see docs/operations.md).",
)
@click.option(
    "--organization", "organization_id", type=PROJECT_ID, default=1, show_default=True, help="Owning organisation."
)
def projects_create(
    data_dir: Path,
    catalog_url: str | None,
    project_id: int | None,
    name: str,
    token: str | None,
    secret: str | None,
    api_key: str | None,
    timezone: str,
    id_merge: str,
    time_mode: str,
    residency: str,
    rate_limits: str,
    organization_id: int,
) -> None:
    """Create a project (works whether or not a server runs on DATA_DIR)."""
    try:
        project = new_or_existing_catalog(data_dir, catalog_url).create_project(
            project_id=project_id,
            name=name,
            token=token,
            secret=secret,
            api_key=api_key,
            timezone=timezone,
            id_merge=IdMerge(id_merge),
            time_mode=TimeMode(time_mode),
            residency=residency,
            rate_limits=rate_limits,
            organization_id=organization_id,
        )
    except MixhouseError as exc:
        _fail(exc.message)
    _print(project.public_dict())


@projects.command("set-rate-limits")
@DATA_DIR
@CATALOG_URL
@click.option("--id", "project_id", type=PROJECT_ID, required=True)
@click.argument("rate_limits")
def projects_set_rate_limits(data_dir: Path, catalog_url: str | None, project_id: int, rate_limits: str) -> None:
    """Set a project's RATE_LIMITS: none, mixpanel or a JSON object; a running server applies it at once."""
    try:
        project = existing_catalog(data_dir, catalog_url).set_rate_limits(project_id, rate_limits)
    except MixhouseError as exc:
        _fail(exc.message)
    _print(project.public_dict())


@projects.command("list")
@DATA_DIR
@CATALOG_URL
@click.option("--show-secrets", is_flag=True, help="Print tokens, API secrets and API keys (hidden otherwise).")
def projects_list(data_dir: Path, catalog_url: str | None, show_secrets: bool) -> None:
    """List the projects of DATA_DIR; credentials are masked unless --show-secrets."""
    listed = [p.public_dict() for p in existing_catalog(data_dir, catalog_url).projects()]
    if not show_secrets:
        for project in listed:
            for key in ("token", "api_secret", "api_key"):
                project[key] = "********"
    _print(listed)


@main.group("service-accounts", cls=LazyGroup)
def service_accounts() -> None:
    """Create, list, delete service accounts and rotate their secrets."""


@service_accounts.command("create")
@DATA_DIR
@CATALOG_URL
@click.option("--username", required=True)
@click.option("--secret", default=None, help="Generated if omitted.")
@click.option("--project", "project_id", type=PROJECT_ID, required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.OWNER.value, show_default=True)
def service_accounts_create(
    data_dir: Path, catalog_url: str | None, username: str, secret: str | None, project_id: int, role: str
) -> None:
    """Create a service account, or grant an existing one a role on another project."""
    try:
        account, secret = existing_catalog(data_dir, catalog_url).create_service_account(
            username=username, secret=secret, project_id=project_id, role=Role(role)
        )
    except MixhouseError as exc:
        _fail(exc.message)
    _print(
        {
            "username": account.username,
            "secret": secret,
            "projects": {str(p): r.value for p, r in account.roles.items()},
        }
    )


# Commands of other packages, imported when used (see LazyGroup). The client's command line
# (clients/python, installed by `make deps`) adds import, export, query, engage, annotations and gdpr, and
# its `flags eval` to the server's `flags` group.
CLIENT_COMMANDS = ("annotations", "engage", "export", "gdpr", "import", "query")


@cache
def _client_commands() -> dict[str, click.Command]:
    """The client's commands, merged with the server's `flags` group; {} without the client."""
    from mixhouse.flags.cli import flags

    host = click.Group(commands={"flags": flags})
    if find_spec("mixhouse_client") is not None:
        from mixhouse_client.cli import add_commands

        add_commands(host)
    return dict(host.commands)


def _client_command(name: str) -> Callable[[], click.Command]:
    return lambda: _client_commands()[name]


def _service_account_command(name: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        from mixhouse.accounts import cli

        command: click.Command = {"list": cli.list_accounts, "delete": cli.delete_account, "rotate": cli.rotate_secret}[
            name
        ]
        return command

    return load


def _backup() -> click.Command:
    from mixhouse.backup.cli import backup

    return backup


def _restore() -> click.Command:
    from mixhouse.backup.cli import restore

    return restore


def _gdpr_tokens() -> click.Command:
    from mixhouse.gdpr.cli import gdpr_tokens

    return gdpr_tokens


def _migrate() -> click.Command:
    from mixhouse.migrate.cli import migrate

    return migrate


def _users() -> click.Command:
    from mixhouse.web.cli import users

    return users


def _catalog() -> click.Command:
    from mixhouse.catalogdb.cli import catalog

    return catalog


assert isinstance(main, LazyGroup) and isinstance(service_accounts, LazyGroup)
service_accounts.lazy.update({name: _service_account_command(name) for name in ("list", "delete", "rotate")})
main.lazy.update(
    {
        "backup": _backup,
        "restore": _restore,
        "gdpr-tokens": _gdpr_tokens,
        "migrate": _migrate,
        "users": _users,
        "catalog": _catalog,
        "flags": _client_command("flags"),
    }
)
if find_spec("mixhouse_client") is not None:
    main.lazy.update({name: _client_command(name) for name in CLIENT_COMMANDS})

if __name__ == "__main__":
    run()
