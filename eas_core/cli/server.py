"""`eascmd server`: start a whole installation on this machine (optionally with a demo),
and `eascmd controller` / `eascmd gateway` to run one part on its own."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import click
from pydantic import ValidationError

from eas_core.artefacts import pack_directory
from eas_core.cli import output
from eas_core.config import (
    DEFAULT_BACKEND,
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_DATA_DIR,
    DEFAULT_GATEWAY_PORT,
    InstallationSettings,
)
from eas_core.controller.backends.registry import BACKENDS
from eas_core.demo import ECHO
from eas_core.errors import Conflict, EASError
from eas_core.installation import Installation, Part
from eas_core.sdk import ControlClient, Service

DEMO_SERVICE = "demo"
# Small enough that the README's tour and every example fit beside it on 2 cores.
DEMO_METADATA = {"instance": 1, "cpu": 0.5, "memory": 256}
REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "workspace.yaml"
# `dagster dev` with one rollout per service at a time, as in deploy/dagster/dagster.yaml;
# no usage telemetry, and no first-visit "join the community" pop-up (nux).
DAGSTER_INSTANCE = """\
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  runs:
    tag_concurrency_limits:
      - key: eas/service
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def pipelines_part(installation: Installation, credentials: dict[str, str], port: int) -> Part:
    """`dagster dev` over workspace.yaml, connected to this installation."""
    dagster = Path(sys.executable).parent / "dagster"
    if not dagster.exists():
        raise EASError("--pipelines needs the pipelines extra: pip install -e '.[pipelines]'")
    home = installation.data_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    # The installation's own instance, written at every start so an older installation's
    # gets today's settings (a Dagster instance of your own: `dagster dev` with DAGSTER_HOME).
    (home / "dagster.yaml").write_text(DAGSTER_INSTANCE)
    settings = installation.settings
    env = {
        "DAGSTER_HOME": str(home),
        "EAS_PIPELINES_ENDPOINT": settings.controller_url,
        "EAS_PIPELINES_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "EAS_PIPELINES_ACCESS_KEY_SECRET": credentials["AccessKeySecret"],
        "EAS_PIPELINES_GATEWAY": settings.endpoint,
    }
    command = [str(dagster), "dev", "-w", str(WORKSPACE), "-h", settings.host, "-p", str(port)]
    return Part("pipelines", command, f"http://{settings.host}:{port}/server_info", env)


def deploy_demo(client: ControlClient) -> Service:
    """The echo processor (eas_core/demo/echo, package data), deployed once; later starts
    reuse it.

    It is uploaded (a reproducible tar, so the same URI every time) rather than named by
    path: the installation may have been started from a directory deployments may not
    read (EAS_ARTEFACT_LOCAL_ROOTS)."""
    with tempfile.TemporaryDirectory(prefix="eas-demo-") as tmp:
        package = pack_directory(ECHO, Path(tmp) / "echo.tar", 16 * 1024 * 1024)
        uri = client.upload(package).uri
    document = {
        "name": DEMO_SERVICE,
        "processor_type": "python",
        "processor_path": uri,
        "processor_entry": "app.py",
        "metadata": DEMO_METADATA,
    }
    try:
        client.create_service(document)
        output.success(f"Created the demo service '{DEMO_SERVICE}' (the echo processor)")
    except Conflict:
        pass
    return client.wait_until_running(DEMO_SERVICE, timeout=120)


@click.command(short_help="Start a whole installation on this machine.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Where everything is kept (default {DEFAULT_DATA_DIR}).",
)
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port",
    "controller_port",
    type=int,
    default=None,
    help=f"Control API port (default {DEFAULT_CONTROLLER_PORT}).",
)
@click.option(
    "--gateway-port", type=int, default=None, help=f"Gateway port (default {DEFAULT_GATEWAY_PORT})."
)
@click.option(
    "--backend",
    type=click.Choice(sorted(BACKENDS)),
    default=None,
    help=f"Where instances run (default {DEFAULT_BACKEND}).",
)
@click.option(
    "--store",
    default=None,
    help="The controller's database: postgresql://USER:PASSWORD@HOST:PORT/DB or "
    "sqlite:///PATH (default a SQLite file in the data directory; also EAS_STORE).",
)
@click.option(
    "--ray-address",
    default=None,
    help="The Ray cluster's address (host:port) instances are placed on, with --backend ray.",
)
@click.option(
    "--demo/--no-demo", default=False, help="Deploy the echo demo service and print a curl."
)
@click.option(
    "--pipelines/--no-pipelines",
    default=False,
    help="Also run the Dagster deployment pipelines (`dagster dev` over workspace.yaml).",
)
@click.option("--dagster-port", type=int, default=3000, show_default=True)
@click.option(
    "--gateways",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="How many gateways to run, on the gateway port and the ports after it.",
)
def server(
    data_dir: Path | None,
    host: str | None,
    controller_port: int | None,
    gateway_port: int | None,
    backend: str | None,
    store: str | None,
    ray_address: str | None,
    demo: bool,
    pipelines: bool,
    dagster_port: int,
    gateways: int,
) -> None:
    """Start a whole installation on this machine: controller, gateway, local instances."""
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "data_dir": data_dir,
            "host": host,
            "controller_port": controller_port,
            "gateway_port": gateway_port,
            "backend": backend,
            "store": store,
            "ray_address": ray_address,
        }.items()
        if v is not None
    }
    try:
        settings = InstallationSettings(**overrides)
    except ValidationError as exc:
        raise click.UsageError(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        ) from None
    installation = Installation(settings, gateways=gateways)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        installation.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def starting(part: Part) -> None:
        log = installation.log_dir / f"{part.name}.log"
        output.progress(f"Waiting for the {part.name} to answer (its log: {log})")

    try:
        output.progress(f"Logs go to {installation.log_dir}")
        installation.start(on_part=starting)
        credentials = json.loads((installation.data_dir / "credentials.json").read_text())
        output.success(f"Control API  {settings.controller_url}")
        output.success(f"Gateway      {settings.endpoint}")
        for port in installation.gateway_ports[1:]:
            output.success(f"Gateway      http://{settings.host}:{port}")
        output.success(f"Data         {installation.data_dir}")
        output.success(f"Logs         {installation.log_dir}")
        output.success(f"Access key   {installation.data_dir / 'credentials.json'}")
        # The label on stderr, the command alone on stdout: it can be copied or piped as is.
        output.success("Configure the CLI with:")
        click.echo(
            f"eascmd config -i {credentials['AccessKeyId']} -k {credentials['AccessKeySecret']} "
            f"-e {settings.controller_url}"
        )
        if demo:
            client = ControlClient(
                settings.controller_url, credentials["AccessKeyId"], credentials["AccessKeySecret"]
            )
            output.progress(f"Deploying the demo service '{DEMO_SERVICE}'")
            info = deploy_demo(client)
            output.success("Service is running; call it with:")
            click.echo(
                f"curl {info.intranet_endpoint} -H 'Authorization: {info.access_token}' "
                "-d 'hello eas'"
            )
        if pipelines:
            output.progress(
                f"Starting the pipelines (its log: {installation.log_dir / 'pipelines.log'})"
            )
            installation.add(pipelines_part(installation, credentials, dagster_port))
            output.success(f"Pipelines    http://{settings.host}:{dagster_port} (Dagster UI)")
        output.success("Press Ctrl-C to stop everything")
        installation.supervise()
    except (RuntimeError, EASError) as exc:
        raise EASError(str(exc)) from None
    finally:
        output.success("Stopping")
        installation.stop()


@click.command()
def controller() -> None:
    """Run only the controller (settings from EAS_* variables)."""
    from eas_core.controller.app import main

    main()


@click.command()
def gateway() -> None:
    """Run only a gateway (settings from EAS_* variables)."""
    from eas_core.gateway.app import main

    main()
