"""eascmd's entry: global options, command aliases, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eas_core.errors import EASError
from eas_core.sdk.control import ClientConfig, ControlClient

ALIASES = {"ls": "list", "w": "showworkers"}


class AliasedGroup(click.Group):
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest


class Context:
    """Global options, turned into a client only when a command needs one."""

    def __init__(
        self, config: Path | None, key_id: str | None, secret: str | None, endpoint: str | None
    ) -> None:
        self.config_path = config
        self.key_id = key_id
        self.secret = secret
        self.endpoint = endpoint
        self._client: ControlClient | None = None

    def client(self) -> ControlClient:
        if self._client is None:
            if self.key_id and self.secret and self.endpoint:
                config = ClientConfig(self.key_id, self.secret, self.endpoint)
            else:
                saved = ClientConfig.load(self.config_path)
                config = ClientConfig(
                    self.key_id or saved.access_key_id,
                    self.secret or saved.access_key_secret,
                    self.endpoint or saved.endpoint,
                )
            self._client = ControlClient.from_config(config)
        return self._client


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def main(argv: list[str] | None = None) -> None:
    from eas_core.cli import alerts, monitoring, scaling, server, services  # noqa: F401

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
