"""The `mixhouse` command: serve, and manage projects and service accounts in a data dir."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from mixhouse.catalog import Catalog
from mixhouse.domain.project import IdMerge, Role, TimeMode
from mixhouse.errors import MixhouseError

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Folder holding the catalog and the event store.",
)


def _print(payload: object) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


@click.group()
def main() -> None:
    """mixhouse: a self-hosted analytics server that speaks Mixpanel's HTTP APIs."""


@main.command()
@DATA_DIR
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--log-level", default="warning", show_default=True)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True), default=None, help="Serve HTTPS.")
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True), default=None)
def serve(
    data_dir: Path, host: str, port: int, log_level: str, ssl_certfile: str | None, ssl_keyfile: str | None
) -> None:
    """Serve every API family on one port."""
    import uvicorn

    from mixhouse.http.app import create_app

    catalog = Catalog(data_dir)
    if not catalog.projects():
        project = catalog.create_project(name="default")
        account, secret = catalog.create_service_account(
            username="mixhouse-admin", secret=None, project_id=project.id, role=Role.OWNER
        )
        _print(
            {
                "created": "default project and service account (keep these)",
                "project": project.public_dict(),
                "service_account": {"username": account.username, "secret": secret, "role": "owner"},
            }
        )
    scheme = "https" if ssl_certfile else "http"
    click.echo(f"mixhouse serving {data_dir} on {scheme}://{host}:{port}", err=True)
    uvicorn.run(
        create_app(data_dir),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


@main.group()
def projects() -> None:
    """Create and list projects."""


@projects.command("create")
@DATA_DIR
@click.option("--id", "project_id", type=int, default=None)
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
@click.option("--residency", default="us", show_default=True)
@click.option(
    "--rate-limits",
    default="none",
    show_default=True,
    help="none; mixpanel (Mixpanel's published limits); or a JSON object of limits (see docs/operations.md).",
)
def projects_create(
    data_dir: Path,
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
) -> None:
    """Create a project (works whether or not a server runs on DATA_DIR)."""
    try:
        project = Catalog(data_dir).create_project(
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
        )
    except MixhouseError as exc:
        _print({"error": exc.message})
        sys.exit(1)
    _print(project.public_dict())


@projects.command("set-rate-limits")
@DATA_DIR
@click.option("--id", "project_id", type=int, required=True)
@click.argument("rate_limits")
def projects_set_rate_limits(data_dir: Path, project_id: int, rate_limits: str) -> None:
    """Set a project's RATE_LIMITS: none, mixpanel or a JSON object; a running server applies it at once."""
    try:
        project = Catalog(data_dir).set_rate_limits(project_id, rate_limits)
    except MixhouseError as exc:
        _print({"error": exc.message})
        sys.exit(1)
    _print(project.public_dict())


@projects.command("list")
@DATA_DIR
def projects_list(data_dir: Path) -> None:
    _print([p.public_dict() for p in Catalog(data_dir).projects()])


@main.group("service-accounts")
def service_accounts() -> None:
    """Create service accounts."""


@service_accounts.command("create")
@DATA_DIR
@click.option("--username", required=True)
@click.option("--secret", default=None, help="Generated if omitted.")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.OWNER.value, show_default=True)
def service_accounts_create(data_dir: Path, username: str, secret: str | None, project_id: int, role: str) -> None:
    """Create a service account, or grant an existing one a role on another project."""
    try:
        account, secret = Catalog(data_dir).create_service_account(
            username=username, secret=secret, project_id=project_id, role=Role(role)
        )
    except MixhouseError as exc:
        _print({"error": exc.message})
        sys.exit(1)
    _print(
        {
            "username": account.username,
            "secret": secret,
            "projects": {str(p): r.value for p, r in account.roles.items()},
        }
    )


if __name__ == "__main__":
    main()
