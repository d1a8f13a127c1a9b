"""Service commands: config, upload, create, modify, stop, start, delete, list, desc,
showworkers, versions, logs, resource."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from eas_core.cli import output
from eas_core.cli.main import Context, cli
from eas_core.errors import BadRequest, EASError, InvalidDescription
from eas_core.sdk.control import ClientConfig, ControlClient, normalize_endpoint

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
LOCAL_PATH_FIELDS = ("model_path", "processor_path")


def _client(ctx: click.Context) -> ControlClient:
    obj: Context = ctx.obj
    return obj.client()


def read_description(path: Path) -> dict[str, Any]:
    """Load a description file; relative local artefact paths are taken from the current
    directory, as `eascmd test` does, and sent absolute."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise EASError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidDescription([f"{path}: not valid JSON ({exc})"]) from None
    if not isinstance(document, dict):
        raise InvalidDescription([f"{path}: the description must be a JSON object"])
    for field in LOCAL_PATH_FIELDS:
        value = document.get(field)
        if isinstance(value, str) and "://" not in value and Path(value).expanduser().exists():
            document[field] = str(Path(value).expanduser().resolve())
    return document


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """`metadata.instance=3` → (["metadata", "instance"], 3). `rpc.*` keys stay one key."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise BadRequest(f"-D {text!r}: expected KEY=VALUE, e.g. -Dmetadata.instance=2")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    head, _, rest = key.partition(".")
    return ([head, rest] if rest else [head]), value


def wait_running(
    client: ControlClient, name: str, timeout: float, version: int | None = None
) -> dict[str, Any]:
    def show(info: dict[str, Any]) -> None:
        if info["Status"] == "Running":
            return
        total, pending, running = (
            info["TotalInstance"],
            info["PendingInstance"],
            info["RunningInstance"],
        )
        output.progress(
            f"{info['Status']} [Total: {total}, Pending: {pending}, Running: {running}]"
        )

    info = client.wait_until_running(name, timeout=timeout, on_progress=show, version=version)
    output.progress("Service is running")
    return info


@cli.command()
@click.option("-i", "--access-key-id", "key_id", required=True)
@click.option("-k", "--access-key-secret", "secret", required=True)
@click.option("-e", "--endpoint", default="http://127.0.0.1:8000", show_default=True)
@click.pass_context
def config(ctx: click.Context, key_id: str, secret: str, endpoint: str) -> None:
    """Store credentials and the control endpoint in ~/.eas/config."""
    obj: Context = ctx.obj
    path = ClientConfig(key_id, secret, normalize_endpoint(endpoint)).save(obj.config_path)
    click.echo(f"Configuration saved to: {path}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--inner", is_flag=True, help="Accepted for compatibility (one network here).")
@json_option
@click.pass_context
def upload(ctx: click.Context, file: Path, inner: bool, as_json: bool) -> None:
    """Store a model or processor file; print the URI to use as model_path/processor_path."""
    result = _client(ctx).upload(file)
    if as_json:
        output.emit_json(result)
    else:
        click.echo(f"[OK] Successfully uploaded file: {result['uri']}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "-r", "--related", is_flag=True, help="Create a related service for blue-green release."
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it runs.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait.")
@json_option
@click.pass_context
def create(
    ctx: click.Context, file: Path, related: bool, wait: bool, timeout: float, as_json: bool
) -> None:
    """Create a service from a description file."""
    client = _client(ctx)
    info = client.create_service(read_description(file), related=related)
    if as_json:
        output.emit_json(info)
    else:
        output.fields(
            {
                "Intranet Endpoint": info["IntranetEndpoint"],
                "Token": info["AccessToken"] or "(open service)",
            }
        )
    if wait:
        wait_running(client, info["ServiceName"], timeout)


@cli.command()
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
@json_option
@click.pass_context
def modify(
    ctx: click.Context,
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
    for text in assignments:
        path, value = parse_assignment(text)
        if len(path) == 2:
            change.setdefault(path[0], {})[path[1]] = value
        else:
            change[path[0]] = value
    client = _client(ctx)
    info = client.modify_service(name, change)
    if as_json:
        output.emit_json(info)
    else:
        output.progress(f"Service {name} updated (current version {info['CurrentVersion']})")
    if wait:
        wait_running(client, name, timeout, version=info["CurrentVersion"])


@cli.command()
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
@json_option
@click.pass_context
def version(
    ctx: click.Context,
    name: str,
    version: int,
    wait: bool,
    timeout: float,
    with_resources: bool,
    as_json: bool,
) -> None:
    """Make VERSION the current version of NAME (rollback), rolling its instances over."""
    client = _client(ctx)
    info = client.switch_version(name, version, with_resources=with_resources)
    if as_json:
        output.emit_json(info)
    else:
        output.progress(f"Service {name} switching to version {version}")
    if wait:
        wait_running(client, name, timeout, version=version)


@cli.command()
@click.argument("name")
@click.option("-w", "--weight", type=int, required=True, help="Percent of the original's traffic.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def release(ctx: click.Context, name: str, weight: int, yes: bool, as_json: bool) -> None:
    """Send WEIGHT% of the original endpoint's traffic to the related service NAME."""
    client = _client(ctx)
    original = client.describe_service(name).get("RelatedTo")
    if not yes and not click.confirm(
        f"Confirmed to release {weight}% of the traffic of [{original}] to [{name}]?", default=True
    ):
        raise click.exceptions.Abort()
    info = client.release(name, weight)
    if as_json:
        output.emit_json(info)
    else:
        output.progress(f"Released {weight}% of [{original}]'s traffic to [{name}]")


@cli.command()
@click.argument("name")
@click.pass_context
def stop(ctx: click.Context, name: str) -> None:
    """Stop every instance of a service (the service is kept)."""
    _client(ctx).stop_service(name)
    output.progress(f"Service {name} stopped")


@cli.command()
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", default=600.0, show_default=True)
@click.pass_context
def start(ctx: click.Context, name: str, wait: bool, timeout: float) -> None:
    """Start a stopped service again."""
    client = _client(ctx)
    client.start_service(name)
    if wait:
        wait_running(client, name, timeout)


@cli.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.pass_context
def delete(ctx: click.Context, name: str, yes: bool, wait: bool) -> None:
    """Delete a service and all its versions."""
    if not yes and not click.confirm(f"Are you sure to delete the service [{name}]?", default=True):
        raise click.exceptions.Abort()
    client = _client(ctx)
    client.delete_service(name)
    retired = None
    if wait:
        retired = client.wait_until_deleted(
            name,
            on_progress=lambda info: output.progress(
                f"Service {name} is terminating ({info['Message']})"
            ),
        )
    if retired is not None:
        served_by = [
            s["ServiceName"]
            for s in client.list_services()
            if s["ServiceName"].startswith(f"{name}_")
            and client.describe_service(s["ServiceName"]).get("RelatedTo") == name
        ]
        by = f" by {', '.join(served_by)}" if served_by else ""
        output.progress(
            f"Service {name} deleted: its instances are stopped; its endpoint and token keep "
            f"serving its released related service{by} until that one is deleted too"
        )
    else:
        output.progress(f"Service {name} deleted")


@cli.command(name="list")
@json_option
@click.pass_context
def list_services(ctx: click.Context, as_json: bool) -> None:
    """List services (alias: ls)."""
    rows = _client(ctx).list_services()
    if as_json:
        output.emit_json(rows)
        return
    for row in rows:
        row["Instances"] = f"{row['RunningInstance']}/{row['TotalInstance']}"
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


@cli.command()
@click.argument("name")
@click.option("--version", "version", type=int, help="Show one version's stored description.")
@json_option
@click.pass_context
def desc(ctx: click.Context, name: str, version: int | None, as_json: bool) -> None:
    """Describe a service (or one of its versions)."""
    client = _client(ctx)
    info = (
        client.get_version(name, version) if version is not None else client.describe_service(name)
    )
    if as_json:
        output.emit_json(info)
    else:
        output.fields(info)


@cli.command()
@click.argument("name")
@json_option
@click.pass_context
def showworkers(ctx: click.Context, name: str, as_json: bool) -> None:
    """The instances of a service (alias: w)."""
    rows = _client(ctx).list_instances(name)
    if as_json:
        output.emit_json(rows)
    else:
        output.table(
            rows,
            [
                "InstanceName",
                "IP",
                "Port",
                "Status",
                "Restarts",
                "Ready",
                "StartTime",
                "Version",
                "Reason",
            ],
        )


@cli.command()
@click.argument("name")
@json_option
@click.pass_context
def versions(ctx: click.Context, name: str, as_json: bool) -> None:
    """Every version of a service."""
    rows = _client(ctx).list_versions(name)
    if as_json:
        output.emit_json(rows)
        return
    for row in rows:
        config = row["ServiceConfig"]
        row["Processor"] = config.get("processor") or config.get("processor_type")
        row["Model"] = config.get("model_path", "")
    output.table(rows, ["Version", "CreateTime", "Processor", "Model"])


@cli.command()
@click.argument("name")
@click.option("--instance", help="Only this instance.")
@click.option("--tail", default=200, show_default=True, help="Lines per instance.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@json_option
@click.pass_context
def logs(
    ctx: click.Context, name: str, instance: str | None, tail: int, follow: bool, as_json: bool
) -> None:
    """Print the log of each instance of a service."""
    client = _client(ctx)
    if as_json:
        output.emit_json(client.logs(name, instance=instance, tail=tail))
        return
    seen: dict[str, int] = {}
    while True:
        data = client.logs(name, instance=instance, tail=tail if not seen else 10_000)
        for instance_id, lines in data["Logs"].items():
            start = seen.get(instance_id, 0) if follow and seen else 0
            fresh = lines[start:] if follow and seen else lines
            for line in fresh:
                click.echo(f"[{instance_id}] {line}")
            seen[instance_id] = len(lines)
        if not follow:
            return
        time.sleep(1.0)


@cli.command(name="test")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--port", default=8080, show_default=True, help="Port to serve on.")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where packages are unpacked (default: a temporary directory).",
)
def test_locally(file: Path, port: int, workdir: Path | None) -> None:
    """Run a service locally in the foreground, no control plane (for debugging)."""
    import tempfile

    from eas_core.runtime.local import run

    run(
        read_description(file),
        port=port,
        workdir=workdir or Path(tempfile.mkdtemp(prefix="eas-test-")),
    )


@cli.group()
def resource() -> None:
    """Resource groups."""


@resource.command(name="list")
@json_option
@click.pass_context
def resource_list(ctx: click.Context, as_json: bool) -> None:
    """List resource groups (alias: ls)."""
    rows = _client(ctx).resources()
    if as_json:
        output.emit_json(rows)
    else:
        output.table(rows, ["ResourceName", "InstanceCount", "CpuCount", "GpuCount", "Status"])


resource.add_command(resource_list, name="ls")


@resource.command(name="list_instance")
@click.argument("resource_id")
@json_option
@click.pass_context
def resource_list_instance(ctx: click.Context, resource_id: str, as_json: bool) -> None:
    """The nodes of a resource group (alias: li)."""
    groups = {g["ResourceName"]: g for g in _client(ctx).resources()}
    if resource_id not in groups:
        raise EASError(f"no resource group {resource_id!r} (have: {', '.join(groups)})")
    nodes = groups[resource_id]["Nodes"]
    if as_json:
        output.emit_json(nodes)
    else:
        output.table(
            nodes,
            ["name", "ip", "cpu", "used_cpu", "memory_mb", "used_memory_mb", "gpu", "used_gpu"],
        )


resource.add_command(resource_list_instance, name="li")
