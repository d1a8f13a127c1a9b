"""Version commands: `version` (roll back or forth), `versions`, and `release` (blue-green)."""

from __future__ import annotations

import click

from eas_core.cli import output
from eas_core.cli.context import Context, pass_context
from eas_core.cli.waiting import wait_running


@click.command(short_help="Make a stored version current (roll back or forth).")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--wait/--no-wait", default=False, show_default=True, help="Wait until it serves.")
@click.option("--timeout", default=600.0, show_default=True)
@click.option(
    "--with-resources",
    is_flag=True,
    help="Also bring back the version's cpu, memory, gpu, resource group and worker/queue "
    "settings (by default they stay as they are now; the instance count always stays).",
)
@output.json_option
@pass_context
def version(
    context: Context,
    name: str,
    version: int,
    wait: bool,
    timeout: float,
    with_resources: bool,
    as_json: bool,
) -> None:
    """Make VERSION the current version of NAME (rollback), rolling its instances over: the
    model, processor and config come back; the resources set since stay unless
    --with-resources."""
    client = context.client()
    info = client.switch_version(name, version, with_resources=with_resources)
    if as_json:
        output.emit_json(info)
    else:
        output.success(f"Service {name} switching to version {version}")
    if wait:
        wait_running(client, name, timeout, version=version)


@click.command()
@click.argument("name")
@output.json_option
@pass_context
def versions(context: Context, name: str, as_json: bool) -> None:
    """Every version of a service."""
    stored = context.client().list_versions(name)
    if as_json:
        output.emit_json(stored)
        return
    rows = [
        {
            **row,
            "Processor": v.service_config.get("processor")
            or v.service_config.get("processor_type"),
            "Model": v.service_config.get("model_path", ""),
        }
        for v, row in zip(stored, output.rows(stored), strict=True)
    ]
    output.table(rows, ["Version", "CreateTime", "Processor", "Model"])


@click.command(short_help="Send part of the original's traffic to a related service.")
@click.argument("name")
@click.option("-w", "--weight", type=int, required=True, help="Percent of the original's traffic.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@output.json_option
@pass_context
def release(context: Context, name: str, weight: int, yes: bool, as_json: bool) -> None:
    """Send WEIGHT% of the original endpoint's traffic to the related service NAME."""
    client = context.client()
    original = client.describe_service(name).related_to
    if not yes and not click.confirm(
        f"Confirmed to release {weight}% of the traffic of [{original}] to [{name}]?", default=True
    ):
        raise click.exceptions.Abort()
    info = client.release(name, weight)
    if as_json:
        output.emit_json(info)
    else:
        output.success(f"Released {weight}% of [{original}]'s traffic to [{name}]")
