"""Service commands: create, modify, stop, start, delete, list, desc, showworkers, logs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from eas_core.cli import output
from eas_core.cli.context import Context, pass_context
from eas_core.cli.description import apply_assignments, read_description
from eas_core.cli.waiting import wait_running
from eas_core.errors import BadRequest


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "-r", "--related", is_flag=True, help="Create a related service for blue-green release."
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it runs.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait.")
@output.json_option
@pass_context
def create(
    context: Context, file: Path, related: bool, wait: bool, timeout: float, as_json: bool
) -> None:
    """Create a service from a description file."""
    client = context.client()
    info = client.create_service(read_description(file), related=related)
    if as_json:
        output.emit_json(info)
    else:
        output.fields(
            {
                "Intranet Endpoint": info.intranet_endpoint,
                "Token": info.access_token or "(open service)",
            }
        )
    if wait:
        wait_running(client, info.service_name, timeout)


@click.command(short_help="Change a service (a new model or processor: a new version).")
@click.argument("name")
@click.option(
    "-s",
    "--spec",
    "spec_file",
    type=click.Path(path_type=Path),
    help="Description with the fields to change.",
)
@click.option(
    "-D",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set one key, e.g. -Dmetadata.instance=2.",
)
@click.option(
    "--wait/--no-wait",
    default=False,
    show_default=True,
    help="Wait until the change has rolled out.",
)
@click.option("--timeout", default=600.0, show_default=True)
@output.json_option
@pass_context
def modify(
    context: Context,
    name: str,
    spec_file: Path | None,
    assignments: tuple[str, ...],
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Change a service: a new model or processor makes a new version."""
    if spec_file is None and not assignments:
        raise BadRequest("modify: give -s FILE or at least one -DKEY=VALUE")
    change: dict[str, Any] = read_description(spec_file) if spec_file else {}
    client = context.client()
    info = client.modify_service(name, apply_assignments(change, assignments))
    if as_json:
        output.emit_json(info)
    else:
        output.success(f"Service {name} updated (current version {info.current_version})")
    if wait:
        wait_running(client, name, timeout, version=info.current_version)


@click.command()
@click.argument("name")
@pass_context
def stop(context: Context, name: str) -> None:
    """Stop every instance of a service (the service is kept)."""
    context.client().stop_service(name)
    output.success(f"Service {name} stopped")


@click.command()
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", default=600.0, show_default=True)
@pass_context
def start(context: Context, name: str, wait: bool, timeout: float) -> None:
    """Start a stopped service again."""
    client = context.client()
    client.start_service(name)
    if wait:
        wait_running(client, name, timeout)


@click.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, show_default=True)
@pass_context
def delete(context: Context, name: str, yes: bool, wait: bool) -> None:
    """Delete a service and all its versions."""
    if not yes and not click.confirm(f"Are you sure to delete the service [{name}]?", default=True):
        raise click.exceptions.Abort()
    client = context.client()
    client.delete_service(name)
    retired = None
    if wait:
        retired = client.wait_until_deleted(
            name,
            on_progress=lambda info: output.progress(
                f"Service {name} is terminating ({info.message})"
            ),
        )
    if retired is not None:
        served_by = [
            s.service_name
            for s in client.list_services()
            if s.service_name.startswith(f"{name}_")
            and client.describe_service(s.service_name).related_to == name
        ]
        by = f" by {', '.join(served_by)}" if served_by else ""
        output.success(
            f"Service {name} deleted: its instances are stopped; its endpoint and token keep "
            f"serving its released related service{by} until that one is deleted too"
        )
    else:
        output.success(f"Service {name} deleted")


@click.command(name="list")
@output.json_option
@pass_context
def list_services(context: Context, as_json: bool) -> None:
    """List services (alias: ls)."""
    services = context.client().list_services()
    if as_json:
        output.emit_json(services)
        return
    rows = [
        {**row, "Instances": f"{s.running_instance}/{s.total_instance}"}
        for s, row in zip(services, output.rows(services), strict=True)
    ]
    output.table(
        rows,
        [
            "ServiceName",
            "Region",
            "Instances",
            "CPU",
            "Memory",
            "GPU",
            "Status",
            "CurrentVersion",
            "CreateTime",
            "UpdateTime",
        ],
    )


@click.command()
@click.argument("name")
@click.option("--version", "version", type=int, help="Show one version's stored description.")
@output.json_option
@pass_context
def desc(context: Context, name: str, version: int | None, as_json: bool) -> None:
    """Describe a service (or one of its versions)."""
    client = context.client()
    info = (
        client.get_version(name, version) if version is not None else client.describe_service(name)
    )
    if as_json:
        output.emit_json(info)
    else:
        output.fields(info.model_dump(by_alias=True))


@click.command()
@click.argument("name")
@output.json_option
@pass_context
def showworkers(context: Context, name: str, as_json: bool) -> None:
    """The instances of a service (alias: w)."""
    instances = context.client().list_instances(name)
    if as_json:
        output.emit_json(instances)
    else:
        output.table(
            output.rows(instances),
            [
                "InstanceName",
                "IP",
                "Port",
                "Status",
                "Restarts",
                "Ready",
                "StartTime",
                "Version",
                "GPUs",
                "GpuMemoryMB",
                "GpuUtil",
                "Reason",
            ],
        )


@click.command()
@click.argument("name")
@click.option("--instance", help="Only this instance.")
@click.option("--tail", default=200, show_default=True, help="Lines per instance.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@output.json_option
@pass_context
def logs(
    context: Context, name: str, instance: str | None, tail: int, follow: bool, as_json: bool
) -> None:
    """Print the log of each instance of a service."""
    client = context.client()
    if as_json:
        output.emit_json(client.logs(name, instance=instance, tail=tail))
        return
    seen: dict[str, int] = {}
    while True:
        data = client.logs(name, instance=instance, tail=tail if not seen else 10_000)
        for instance_id, lines in data.logs.items():
            start = seen.get(instance_id, 0) if follow and seen else 0
            fresh = lines[start:] if follow and seen else lines
            for line in fresh:
                click.echo(f"[{instance_id}] {line}")
            seen[instance_id] = len(lines)
        if not follow:
            return
        time.sleep(1.0)
