"""`query jql` and `gdpr retrieve|delete|status`, registered on `cli.app` when `cli` is imported."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from mixhouse_client import _cli_render as render
from mixhouse_client._client import Client
from mixhouse_client._exceptions import MixpanelError
from mixhouse_client.cli import (
    ApiSecret,
    AsCsv,
    AsJson,
    BaseUrl,
    ProjectId,
    RegionOpt,
    Secret,
    Timeout,
    Username,
    _client,
    _env,
    _show,
    app,
    one_line_errors,
    query_app,
)

gdpr_app = typer.Typer(help="GDPR and CCPA: retrieve or delete users' data.", no_args_is_help=True)
app.add_typer(gdpr_app, name="gdpr")

DONE = ("SUCCESS", "FAILURE", "REVOKED", "NOT_FOUND")


@query_app.command("jql")
@one_line_errors
def jql_command(
    script: Annotated[str, typer.Argument(help="The JQL script's file; - for stdin.")],
    params: Annotated[
        str | None, typer.Option("--params", help="The script's `params`, a JSON object.", show_default=False)
    ] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Run a JQL script: its result as a table when it is tabular (groupBy keys and values, rows), else JSON."""
    source = sys.stdin.read() if script == "-" else Path(script).read_text(encoding="utf-8")
    parsed: Any = None
    if params is not None:
        try:
            parsed = json.loads(params)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--params") from exc
        if not isinstance(parsed, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--params")
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        result = client.jql(source, parsed)
    rows = None if as_json else render.jql_rows(result)
    if rows is None:  # asked for JSON, or not tabular
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        _show(result, rows, False, as_csv)


GdprToken = Annotated[
    str | None,
    typer.Option("--gdpr-token", envvar=_env("GDPR_TOKEN"), help="The GDPR API's bearer token.", show_default=False),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar=_env("TOKEN"), help="Project token (names the project).", show_default=False),
]
Ids = Annotated[list[str], typer.Option("--distinct-id", help="A user's distinct id (repeat, at most 2,000).")]
Ccpa = Annotated[bool, typer.Option("--ccpa", help="A CCPA request (default GDPR).")]
Wait = Annotated[bool, typer.Option("--wait", help="Wait until the job is done.")]


def _gdpr_client(
    base_url: str | None,
    region: str | None,
    username: str | None,
    secret: str | None,
    project_id: int | None,
    api_secret: str | None,
    timeout: float | None,
    token: str | None,
    gdpr_token: str | None,
) -> Client:
    client = _client(base_url, region, username, secret, project_id, api_secret, timeout, token, gdpr_token)
    return client


def _wait(client: Client, kind: str, task_id: str, poll: float) -> dict[str, Any]:
    status = client.gdpr.retrieval if kind == "retrieval" else client.gdpr.deletion
    while True:
        job = status(task_id)
        if job.get("status") in DONE:
            return job
        time.sleep(poll)


@gdpr_app.command("retrieve")
@one_line_errors
def gdpr_retrieve_command(
    distinct_id: Ids,
    ccpa: Ccpa = False,
    disclosure_type: Annotated[
        str | None, typer.Option("--disclosure-type", help="CCPA: Data, Categories or Sources.", show_default=False)
    ] = None,
    wait: Wait = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="With --wait: write the file here.", show_default=False)
    ] = None,
    gdpr_token: GdprToken = None,
    token: Token = None,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Start a data retrieval job: prints its task id (with --wait, its final status, and the file to --output)."""
    args = (base_url, region, username, secret, project_id, api_secret, timeout, token, gdpr_token)
    with _gdpr_client(*args) as client:
        task_id = client.gdpr.create_retrieval(
            distinct_id, compliance_type="CCPA" if ccpa else "GDPR", disclosure_type=disclosure_type
        )
        if not wait:
            typer.echo(task_id)
            return
        job = _wait(client, "retrieval", task_id, 0.5)
        typer.echo(json.dumps({"task_id": task_id, **job}, ensure_ascii=False))
        if job.get("status") != "SUCCESS":
            raise MixpanelError(f"retrieval {task_id} ended {job.get('status')}")
        if output is not None:
            output.write_text(json.dumps(client.gdpr.retrieval_file(task_id), ensure_ascii=False) + "\n")


@gdpr_app.command("delete")
@one_line_errors
def gdpr_delete_command(
    distinct_id: Ids,
    ccpa: Ccpa = False,
    wait: Wait = False,
    gdpr_token: GdprToken = None,
    token: Token = None,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Start a deletion job for these users: prints its task id (with --wait, its final status)."""
    args = (base_url, region, username, secret, project_id, api_secret, timeout, token, gdpr_token)
    with _gdpr_client(*args) as client:
        task_id = client.gdpr.create_deletion(distinct_id, compliance_type="CCPA" if ccpa else "GDPR")
        if not wait:
            typer.echo(task_id)
            return
        job = _wait(client, "deletion", task_id, 0.5)
    typer.echo(json.dumps(job, ensure_ascii=False))
    if job.get("status") != "SUCCESS":
        raise MixpanelError(f"deletion {task_id} ended {job.get('status')}")


@gdpr_app.command("status")
@one_line_errors
def gdpr_status_command(
    task_id: Annotated[str, typer.Argument(help="The task id.")],
    deletion: Annotated[bool, typer.Option("--deletion/--retrieval", help="Which kind of job.")] = True,
    gdpr_token: GdprToken = None,
    token: Token = None,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """A job's status, as JSON."""
    args = (base_url, region, username, secret, project_id, api_secret, timeout, token, gdpr_token)
    with _gdpr_client(*args) as client:
        job = client.gdpr.deletion(task_id) if deletion else client.gdpr.retrieval(task_id)
    typer.echo(json.dumps(job, ensure_ascii=False))
