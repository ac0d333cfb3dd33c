"""Command-line management of annotations (`annotations list|create|update|delete|tags`) and feature flags
(`flags list|show|create|update|enable|disable|archive|restore|delete|test-users|readout`), registered on
`cli.app` when `cli` is imported."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mixhouse_client import _cli_render as render
from mixhouse_client._client import Client
from mixhouse_client._exceptions import MixpanelError, NotFound
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
    flags_app,
    one_line_errors,
)

annotations_app = typer.Typer(help="Annotations: dated notes on the project's charts.", no_args_is_help=True)
app.add_typer(annotations_app, name="annotations")

OptFrom = Annotated[str | None, typer.Option("--from-date", help="First day, YYYY-MM-DD.", show_default=False)]
OptTo = Annotated[str | None, typer.Option("--to-date", help="Last day, YYYY-MM-DD.", show_default=False)]
Tags = Annotated[
    list[str] | None,
    typer.Option("--tag", help="A tag's name (repeat for several); made when the project has none of that name."),
]
WorkspaceId = Annotated[
    int | None,
    typer.Option(
        "--workspace-id",
        envvar=_env("WORKSPACE_ID"),
        help="Mixpanel's workspace of the flags (mixhouse: not needed).",
        show_default=False,
    ),
]
FlagArg = Annotated[str, typer.Argument(help="The flag's key or id.")]


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")


def _read_json(source: str) -> Any:
    """A JSON object from a file, or from stdin for `-`."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise MixpanelError(f"{source}: not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MixpanelError(f"{source}: expected a JSON object")
    return value


# -- annotations -----------------------------------------------------------------------------------


def _tag_ids(client: Client, names: Sequence[str], *, create: bool) -> list[int]:
    known = {t["name"]: t["id"] for t in client.annotations.tags()}
    ids = []
    for name in names:
        if name not in known:
            if not create:
                raise MixpanelError(f"no annotation tag named {name!r}")
            known[name] = client.annotations.create_tag(name)["id"]
        ids.append(known[name])
    return ids


@annotations_app.command("list")
@one_line_errors
def annotations_list_command(
    from_date: OptFrom = None,
    to_date: OptTo = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only those with this tag (repeat: any).")] = None,
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
    """The annotations of the days (inclusive; every one without dates), oldest first."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        tags = _tag_ids(client, tag, create=False) if tag else None
        annotations = client.annotations.list(from_date=from_date, to_date=to_date, tags=tags)
    rows = render.Rows(
        "annotations",
        ["id", "date", "description", "tags", "by"],
        [
            [
                str(a["id"]),
                a["date"],
                a["description"],
                ", ".join(t["name"] for t in a["tags"]),
                a["user"]["first_name"] if a["user"] else "",
            ]
            for a in annotations
        ],
    )
    _show(annotations, rows, as_json, as_csv)


@annotations_app.command("create")
@one_line_errors
def annotations_create_command(
    date: Annotated[str, typer.Option("--date", help="YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS'.")],
    description: Annotated[str, typer.Option("--description", help="The note.")],
    tag: Tags = None,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Annotate a date; prints the annotation as JSON."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        tags = _tag_ids(client, tag, create=True) if tag else ()
        _print_json(client.annotations.create(date, description, tags=tags))


@annotations_app.command("update")
@one_line_errors
def annotations_update_command(
    annotation_id: Annotated[int, typer.Argument(help="The annotation's id.")],
    date: Annotated[str | None, typer.Option("--date", show_default=False)] = None,
    description: Annotated[str | None, typer.Option("--description", show_default=False)] = None,
    tag: Tags = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove every tag.")] = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Change an annotation's date, description or tags (--tag replaces them); prints it as JSON."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        tags = [] if no_tags else _tag_ids(client, tag, create=True) if tag else None
        _print_json(client.annotations.update(annotation_id, date=date, description=description, tags=tags))


@annotations_app.command("delete")
@one_line_errors
def annotations_delete_command(
    annotation_id: Annotated[int, typer.Argument(help="The annotation's id.")],
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Delete an annotation."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        client.annotations.delete(annotation_id)
    sys.stderr.write(f"deleted annotation {annotation_id}\n")


@annotations_app.command("tags")
@one_line_errors
def annotations_tags_command(
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """The project's annotation tags."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        tags = client.annotations.tags()
    if as_json:
        _print_json(tags)
        return
    rows = [[str(t["id"]), t["name"], "yes" if t["has_annotations"] else "no"] for t in tags]
    render.print_table(Console(), render.Rows("annotation tags", ["id", "name", "in use"], rows))


# -- feature flags ---------------------------------------------------------------------------------


def _flags_client(
    base_url: str | None,
    region: str | None,
    username: str | None,
    secret: str | None,
    project_id: int | None,
    api_secret: str | None,
    timeout: float | None,
    workspace_id: int | None,
) -> Client:
    client = _client(base_url, region, username, secret, project_id, api_secret, timeout)
    client.workspace_id = workspace_id
    return client


def _flag_id(client: Client, flag: str) -> str:
    """A flag's id from its key (archived flags included) or its id."""
    for doc in client.feature_flags.list(include_archived=True):
        if doc.get("key") == flag or doc.get("id") == flag:
            return str(doc["id"])
    raise NotFound(404, {"error": f"no feature flag with key or id {flag!r}"}, method="GET", url="feature-flags")


def _rollout(doc: dict[str, Any]) -> str:
    rollouts = doc.get("ruleset", {}).get("rollout") or []
    if not rollouts:
        return ""
    return ", ".join(f"{float(r.get('rollout_percentage', 0)):.0%}" for r in rollouts)


@flags_app.command("list")
@one_line_errors
def flags_list_command(
    include_archived: Annotated[bool, typer.Option("--all", help="Archived flags too.")] = False,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
    workspace_id: WorkspaceId = None,
) -> None:
    """The project's flags: key, status, variants, rollout."""
    with _flags_client(base_url, region, username, secret, project_id, api_secret, timeout, workspace_id) as client:
        docs = client.feature_flags.list(include_archived=include_archived)
    if as_json:
        _print_json(docs)
        return
    rows = [
        [
            d.get("key", ""),
            d.get("status", ""),
            d.get("name", ""),
            ", ".join(str(v.get("key")) for v in d.get("ruleset", {}).get("variants", [])),
            _rollout(dict(d)),
            d.get("id", ""),
        ]
        for d in docs
    ]
    render.print_table(
        Console(), render.Rows("feature flags", ["key", "status", "name", "variants", "rollout", "id"], rows)
    )


@flags_app.command("show")
@one_line_errors
def flags_show_command(
    flag: FlagArg,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
    workspace_id: WorkspaceId = None,
) -> None:
    """One flag, as JSON."""
    with _flags_client(base_url, region, username, secret, project_id, api_secret, timeout, workspace_id) as client:
        _print_json(client.feature_flags.get(_flag_id(client, flag)))


@flags_app.command("create")
@one_line_errors
def flags_create_command(
    file: Annotated[str, typer.Argument(help="The flag as a JSON object (name, key, ruleset, ...); - for stdin.")],
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
    workspace_id: WorkspaceId = None,
) -> None:
    """Create a flag from a JSON definition; prints the flag as JSON."""
    definition = _read_json(file)
    with _flags_client(base_url, region, username, secret, project_id, api_secret, timeout, workspace_id) as client:
        _print_json(client.feature_flags.create(definition))


@flags_app.command("update")
@one_line_errors
def flags_update_command(
    flag: FlagArg,
    file: Annotated[str, typer.Argument(help="The fields to change, a JSON object; - for stdin.")],
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
    workspace_id: WorkspaceId = None,
) -> None:
    """Change the given fields of a flag (the others are kept); prints the flag as JSON."""
    changes = _read_json(file)
    with _flags_client(base_url, region, username, secret, project_id, api_secret, timeout, workspace_id) as client:
        _print_json(client.feature_flags.update(_flag_id(client, flag), changes))


def _status_command(name: str, verb: str, help_text: str) -> None:
    @flags_app.command(name, help=help_text)
    @one_line_errors
    def command(
        flag: FlagArg,
        base_url: BaseUrl = None,
        region: RegionOpt = None,
        username: Username = None,
        secret: Secret = None,
        project_id: ProjectId = None,
        api_secret: ApiSecret = None,
        timeout: Timeout = None,
        workspace_id: WorkspaceId = None,
    ) -> None:
        with _flags_client(base_url, region, username, secret, project_id, api_secret, timeout, workspace_id) as client:
            flag_id = _flag_id(client, flag)
            if name == "delete":
                client.feature_flags.delete(flag_id)
                message = f"{verb} {flag}"
            else:
                doc = getattr(client.feature_flags, name)(flag_id)
                message = f"{verb} {flag} (now {doc.get('status')})"
        sys.stderr.write(message + "\n")


_status_command("enable", "enabled", "Serve the flag.")
_status_command("disable", "disabled", "Stop serving the flag.")
_status_command("archive", "archived", "Archive the flag (not served, not listed).")
_status_command("restore", "restored", "Restore an archived flag, disabled.")
_status_command("delete", "deleted", "Delete the flag.")


@flags_app.command("test-users")
@one_line_errors
def flags_test_users_command(
    flag: FlagArg,
    user: Annotated[
        list[str] | None, typer.Option("--user", help="VARIANT=DISTINCT_ID (repeat); none clears the testers.")
    ] = None,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
    workspace_id: WorkspaceId = None,
) -> None:
    """Set the flag's QA testers: each distinct id gets the variant named for it."""
    users: dict[str, str] = {}
    for item in user or []:
        variant, sep, distinct_id = item.partition("=")
        if not sep or not variant or not distinct_id:
            raise typer.BadParameter(f"expected VARIANT=DISTINCT_ID, got {item!r}", param_hint="--user")
        users[variant] = distinct_id
    with _flags_client(base_url, region, username, secret, project_id, api_secret, timeout, workspace_id) as client:
        doc = client.feature_flags.set_test_users(_flag_id(client, flag), users)
    _print_json(doc.get("ruleset", {}).get("test", {}).get("users", {}))


@flags_app.command("readout")
@one_line_errors
def flags_readout_command(
    flag: FlagArg,
    conversion_event: Annotated[str, typer.Option("--conversion-event", help="The event that counts as converting.")],
    from_date: Annotated[str, typer.Option("--from-date", help="First day, YYYY-MM-DD.")],
    to_date: Annotated[str, typer.Option("--to-date", help="Last day, YYYY-MM-DD.")],
    confidence: Annotated[float | None, typer.Option("--confidence", show_default=False)] = None,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
    workspace_id: WorkspaceId = None,
) -> None:
    """The experiment readout of a flag: conversion per variant against the control."""
    with _flags_client(base_url, region, username, secret, project_id, api_secret, timeout, workspace_id) as client:
        reply = client.feature_flags.readout(
            _flag_id(client, flag), conversion_event, from_date, to_date, confidence=confidence
        )
    if as_json:
        _print_json(reply)
        return
    rows = [
        [
            v["variant"] + (" (control)" if v.get("is_control") else ""),
            v["exposed_users"],
            v["converted_users"],
            f"{v['conversion_rate']:.1%}" if v.get("conversion_rate") is not None else "",
            f"{v['lift']:+.1%}" if v.get("lift") is not None else "",
            f"{v['p_value']:.4f}" if v.get("p_value") is not None else "",
            {True: "yes", False: "no"}.get(v.get("significant"), ""),
        ]
        for v in reply.get("variants", [])
    ]
    header = ["variant", "exposed", "converted", "rate", "lift", "p-value", "significant"]
    render.print_table(Console(), render.Rows(f"{reply.get('flag_key')}: {conversion_event}", header, rows))
