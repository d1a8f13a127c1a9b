"""eascmd's entry: the command group with its global options and aliases, every verb group's
commands registered on it, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eas_core import __version__
from eas_core.cli import (
    alerts,
    artefacts,
    config,
    local_test,
    monitoring,
    pysdk,
    resources,
    scaling,
    server,
    service,
    shadow,
    versions,
)
from eas_core.cli.context import Context
from eas_core.cli.groups import AliasedGroup
from eas_core.errors import EASError

ALIASES = {"ls": "list", "w": "showworkers"}


@click.group(
    cls=AliasedGroup,
    aliases=ALIASES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="eascmd", message="%(prog)s %(version)s")
@click.option(
    "-c", "--config", type=click.Path(path_type=Path), help="Config file (default ~/.eas/config)."
)
@click.option("-i", "--access-key-id", "key_id", help="Access key id (overrides the config).")
@click.option(
    "-k", "--access-key-secret", "secret", help="Access key secret (overrides the config)."
)
@click.option("-e", "--endpoint", help="Control API endpoint, e.g. http://127.0.0.1:8000.")
@click.pass_context
def cli(
    ctx: click.Context,
    config: Path | None,
    key_id: str | None,
    secret: str | None,
    endpoint: str | None,
) -> None:
    """OpenEAS: deploy models and prediction code as always-on REST services."""
    ctx.obj = Context(config, key_id, secret, endpoint)


for command in (
    config.config,
    artefacts.upload,
    service.create,
    service.modify,
    service.stop,
    service.start,
    service.delete,
    service.list_services,
    service.desc,
    service.showworkers,
    service.logs,
    versions.version,
    versions.versions,
    versions.release,
    resources.resource,
    server.server,
    server.controller,
    server.gateway,
    local_test.test_locally,
    alerts.alert,
    monitoring.monitor,
    scaling.autoscale,
    scaling.events,
    shadow.shadow,
    pysdk.pysdk,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="eascmd", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EASError as exc:
        click.echo(f"{exc.kind}: {exc.message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
