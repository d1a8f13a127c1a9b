"""`eascmd resource`: the resource groups instances are placed in, and their nodes."""

from __future__ import annotations

import click

from eas_core.cli import output
from eas_core.cli.context import Context, pass_context
from eas_core.cli.groups import AliasedGroup
from eas_core.sdk import ControlModel
from eas_core.spec.control import Node


@click.group(cls=AliasedGroup, aliases={"ls": "list", "li": "list_instance"})
def resource() -> None:
    """Resource groups."""


GROUP_COLUMNS = [
    "ResourceName",
    "InstanceCount",
    "CpuCount",
    "GpuCount",
    "CreateTime",
    "Status",
    "Description",
]


@resource.command(name="list")
@output.json_option
@pass_context
def resource_list(context: Context, as_json: bool) -> None:
    """List resource groups (alias: ls). InstanceCount is the group's nodes."""
    groups = context.client().resources()
    if as_json:
        output.emit_json(groups)
    else:
        output.table(output.rows(groups), GROUP_COLUMNS)


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = text
    return labels


@resource.command(name="create")
@click.argument("name")
@click.option("--description", "-d", default="", help="What the group is for.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE, repeatable.")
@output.json_option
@pass_context
def resource_create(
    context: Context, name: str, description: str, labels: tuple[str, ...], as_json: bool
) -> None:
    """Create resource group NAME. Nodes join it by its name (Ray: the custom resource
    group:NAME; local: EAS_NODE_RESOURCE_GROUP=NAME); services name it in metadata.resource."""
    group = context.client().create_resource(name, description=description, labels=_labels(labels))
    if as_json:
        output.emit_json(group)
        return
    output.success(f"resource group {name} created")
    _show(group)


@resource.command(name="desc")
@click.argument("resource_id")
@output.json_option
@pass_context
def resource_desc(context: Context, resource_id: str, as_json: bool) -> None:
    """One group: status, nodes, and the services placed in it."""
    group = context.client().describe_resource(resource_id)
    if as_json:
        output.emit_json(group)
        return
    _show(group)


def _show(group: ControlModel) -> None:
    data = group.model_dump(by_alias=True)
    nodes = data.pop("Nodes")
    data["Nodes"] = [n["name"] for n in nodes]
    output.fields(data)


@resource.command(name="delete")
@click.argument("resource_id")
@pass_context
def resource_delete(context: Context, resource_id: str) -> None:
    """Delete a created group; refused for public and while a service names it."""
    context.client().delete_resource(resource_id)
    output.success(f"resource group {resource_id} deleted")


@resource.command(name="list_instance")
@click.argument("resource_id")
@output.json_option
@pass_context
def resource_list_instance(context: Context, resource_id: str, as_json: bool) -> None:
    """The nodes of a resource group with their usage (alias: li)."""
    nodes = context.client().describe_resource(resource_id).nodes
    if as_json:
        output.emit_json(nodes)
    else:
        output.table(
            [_usage(n) for n in nodes],
            ["Name", "IP", "CPU total/used", "Memory total/used", "GPU total/used", "Instances"],
        )


def _usage(node: Node) -> dict[str, object]:
    return {
        "Name": node.name,
        "IP": node.ip,
        "CPU total/used": f"{node.cpu:g}/{node.used_cpu:g}",
        "Memory total/used": f"{node.memory_mb}M/{node.used_memory_mb}M",
        "GPU total/used": f"{node.gpu}/{node.used_gpu}",
        "Instances": node.instances,
    }
