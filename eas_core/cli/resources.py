"""`eascmd resource`: the resource groups instances are placed in, and their nodes."""

from __future__ import annotations

import click

from eas_core.cli import output
from eas_core.cli.context import Context, pass_context
from eas_core.cli.groups import AliasedGroup
from eas_core.errors import EASError


@click.group(cls=AliasedGroup, aliases={"ls": "list", "li": "list_instance"})
def resource() -> None:
    """Resource groups."""


@resource.command(name="list")
@output.json_option
@pass_context
def resource_list(context: Context, as_json: bool) -> None:
    """List resource groups (alias: ls)."""
    groups = context.client().resources()
    if as_json:
        output.emit_json(groups)
    else:
        output.table(
            output.rows(groups),
            ["ResourceName", "InstanceCount", "CpuCount", "GpuCount", "Status"],
        )


@resource.command(name="list_instance")
@click.argument("resource_id")
@output.json_option
@pass_context
def resource_list_instance(context: Context, resource_id: str, as_json: bool) -> None:
    """The nodes of a resource group (alias: li)."""
    groups = {g.resource_name: g for g in context.client().resources()}
    if resource_id not in groups:
        raise EASError(f"no resource group {resource_id!r} (have: {', '.join(groups)})")
    nodes = groups[resource_id].nodes
    if as_json:
        output.emit_json(nodes)
    else:
        output.table(
            output.rows(nodes),
            ["name", "ip", "cpu", "used_cpu", "memory_mb", "used_memory_mb", "gpu", "used_gpu"],
        )
